"""The original BearID's SVM as a class stage: dlib's one-vs-one vote names the bear, as bearsvm
did, and BearID's open-set familiarity, fitted on the user's splits beside it, says "unknown".

`ImportedSvmClassifier` is an `OpenSetClassifier` (the same estimator interface, pickles,
`predictions`, `familiarity`, `threshold_`), so evaluation, export, the bundle and the service
take it as they take BearID's own. Only `fit` differs: the SVM is dlib's as it was trained and
is never refitted; fit learns what the file does not hold: the familiarity (relative
Mahalanobis or cosine, over the bears' chips in the user's training split), the threshold (on
validation, as for BearID's SVM), and one temperature that turns the votes into probabilities.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.utils.validation import validate_data

from bearid.classify import UNKNOWN, OpenSetClassifier, Prediction, bear_sums, fit_temperature, relative_mahalanobis
from bearid.dlibformat.svm import OneVsOneSvm
from bearid.embed import unit
from bearid.errors import BearIDError


class ImportedSvmClassifier(OpenSetClassifier):
    """bearsvm's one-vs-one linear SVMs (`svm`, read by `read_bearsvm`) with an open-set reject.

    Fitted: `classes_` (the SVM's ids, in its label order, so index i is dlib's label i),
    `present_` (the indices of the bears with training chips in the user's split: the
    familiarity is measured against those), `novelty_`/`centroids_` over them, `scale_` (the
    votes' temperature), `threshold_` and its note."""

    def __init__(
        self,
        *,
        svm: OneVsOneSvm | None = None,
        novelty: Literal["mahalanobis", "cosine"] = "mahalanobis",
        target_far: float = 0.1,
        min_known_accept: float = 0.9,
    ) -> None:
        super().__init__(novelty=novelty, target_far=target_far, min_known_accept=min_known_accept)
        self.svm = svm

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        X_views: Any = None,
        y_views: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        X_unknown: Any = None,
        y_unknown: Any = None,
    ) -> ImportedSvmClassifier:
        """Fit the familiarity and threshold on `X` (chips of bears the SVM does not know are
        left out of it), the validation chips and the unknown bears, as OpenSetClassifier.fit."""
        if self.svm is None:
            raise BearIDError("an imported SVM classifier needs its SVM (read_bearsvm)")
        X, y = validate_data(self, X, y)
        if X.shape[1] != self.svm.dim:
            raise BearIDError(f"the embeddings have {X.shape[1]} dimensions, the imported SVM {self.svm.dim}")
        self.classes_ = np.array(self.svm.ids, dtype=str)
        labels = np.asarray(y).astype(str)
        keep = np.isin(labels, self.classes_)
        if not keep.any():
            raise BearIDError(
                f"no training chip is of a bear the imported SVM knows ({', '.join(self.svm.ids[:5])}, ...): "
                "the splits must hold some of its bears to fit the open-set threshold"
            )
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        X, codes = X[keep], np.array([index[v] for v in labels[keep]])
        self.present_ = np.unique(codes)
        local = np.searchsorted(self.present_, codes)
        directions = unit(X)
        self.model_ = None
        self.scale_ = fit_temperature(self.svm.votes(X).astype(np.float64), codes)
        self.centroids_ = unit(bear_sums(directions, local, len(self.present_)))
        self.chips_ = self.chip_codes_ = None
        self.novelty_ = None
        if self.novelty == "mahalanobis":
            x, groups = X, local
            if X_views is not None and len(X_views):
                vy = np.asarray(y_views).astype(str)
                seen = np.isin(vy, self.classes_[self.present_])
                x = np.concatenate([x, np.asarray(X_views)[seen]])
                groups = np.concatenate([local, np.searchsorted(self.present_, [index[v] for v in vy[seen]])])
            self.novelty_ = relative_mahalanobis(x, groups)
        elif self.novelty != "cosine":
            raise ValueError(f"novelty must be 'mahalanobis' or 'cosine', not {self.novelty!r}")
        known_x, known_y, unknown_x, unknown_y = self._validation(X_val, y_val, X_unknown, y_unknown)
        self.target_met_ = None
        if len(unknown_y):
            self.threshold_, self.threshold_note_ = self._choose_threshold(known_x, known_y, unknown_x, unknown_y)
        elif len(known_y):
            self.threshold_, self.threshold_note_ = self._keep_known(known_x, known_y, "known validation chips")
        else:
            self.threshold_, self.threshold_note_ = self._keep_known(X, self.classes_[codes], "training chips")
        return self

    # -- using it ------------------------------------------------------------------------
    def closeness(self, X: Any) -> np.ndarray:
        """N x len(classes_) by the familiarity score; -inf for bears with no training chips."""
        x = self._vectors(X)
        out = np.full((len(x), len(self.classes_)), -np.inf)
        if self.novelty_ is not None:
            out[:, self.present_] = -self.novelty_.distances(x)
        else:
            out[:, self.present_] = unit(x) @ self.centroids_.T
        return out

    def votes(self, X: Any) -> np.ndarray:
        """N x len(classes_): how many of dlib's pairwise SVMs vote for each bear."""
        return self.svm.votes(self._vectors(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """The votes (N x bears; for two bears, N: positive for the second, scikit-learn's way)."""
        v = self.votes(X).astype(np.float64)
        return v if len(self.classes_) > 2 else v[:, 1] - v[:, 0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """A softmax of the votes at the fitted temperature (the votes are all dlib's SVM gives)."""
        from scipy.special import softmax

        x = self._vectors(X)
        if len(x) == 0:
            return np.zeros((0, len(self.classes_)))
        return softmax(self.scale_ * self.svm.votes(x), axis=1)

    def dlib_labels(self, X: Any) -> np.ndarray:
        """dlib's decision for each chip: its label index (bearsvm's `df(sample)`)."""
        return self.svm.decide(self._vectors(X))

    def predict(self, X: Any) -> np.ndarray:
        """dlib's bear for each chip, or `UNKNOWN` below the familiarity threshold."""
        x = self._vectors(X)
        out = self.classes_[self.svm.decide(x)].astype(np.result_type(self.classes_.dtype, np.array(UNKNOWN)))
        out[self.familiarity(x) < self.threshold_] = UNKNOWN
        return out

    def predictions(self, embeddings: Any, top: int = 5) -> list[Prediction]:
        """dlib's bear first (ties broken as dlib breaks them), then the others by votes."""
        x = self._vectors(embeddings)
        ids, out = self.ids, []
        votes = self.svm.votes(x)
        for row, v, score in zip(self.predict_proba(x), votes, self.familiarity(x)):
            order = np.argsort(-v, kind="stable")[:top]  # the first of equals is dlib's choice
            known = bool(score >= self.threshold_)
            out.append(
                Prediction(
                    ids[order[0]] if known else None,
                    known,
                    float(row[order[0]]),
                    [(ids[i], float(row[i])) for i in order],
                    float(score),
                )
            )
        return out
