"""bearsvm at inference: an SVM over embeddings that names the bear, or says "unknown".

`OpenSetClassifier` is a scikit-learn estimator (`fit`, `predict`, `predict_proba`,
`get_params`, so it clones, cross-validates and grid-searches) that learns everything in
`fit`, the open-set threshold included. It is pickled in the bundle (and unpickled only after
its checksum is verified) and used by evaluation and the service alike. It takes the
embedding network's outputs as they are, before L2 normalisation: the SVM and the cosine
score use their direction (the embedding), the Mahalanobis open-set score uses their length too.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bearid.embed import unit
from bearid.errors import BearIDError
from bearid.metrics import balanced_accuracy

# What `predict` says for a chip of a bear it does not know (familiarity below the threshold).
# No bear may be called this: a bear id of "unknown" could not be told from a rejection.
UNKNOWN = "unknown"
MIN_CHIPS = 2  # calibration cross-validates: a bear needs two training chips to be known


class TooFewBears(BearIDError, ValueError):
    """Fewer than two bears to tell apart (a ValueError too, as scikit-learn expects)."""


@dataclass
class Prediction:
    bear_id: str | None  # None: an unknown bear
    known: bool
    confidence: float  # calibrated probability of the best bear
    candidates: list[tuple[str, float]] = field(default_factory=list)  # best first
    familiarity: float = 0.0  # the open-set score: higher is more like a known bear; below the threshold, unknown


@dataclass
class RelativeMahalanobis:
    """Open-set score from Gaussians fitted to the known bears' training vectors (Lee et al.
    2018; relative form, Ren et al. 2021): minus the smallest Mahalanobis distance to a
    bear's mean (one covariance shared by the bears), less the distance to one Gaussian
    over all of them. Unlike cosine similarity it weighs each direction by how much a
    bear's own photos vary along it, so a new bear that differs where known bears are
    steady stands out; the relative form discounts what is merely unusual for any bear."""

    means: np.ndarray  # bears x dim
    precision: np.ndarray  # dim x dim, shared by the bears
    background_mean: np.ndarray  # dim
    background_precision: np.ndarray  # dim x dim

    def distances(self, vectors: np.ndarray) -> np.ndarray:
        """N x bears: squared Mahalanobis distance to each bear's mean, less that to all bears."""
        x = np.asarray(vectors, dtype=np.float64)
        xp = x @ self.precision
        to_bears = (
            (xp * x).sum(1)[:, None]
            - 2 * xp @ self.means.T
            + ((self.means @ self.precision) * self.means).sum(1)[None, :]
        )
        d = x - self.background_mean
        return to_bears - ((d @ self.background_precision) * d).sum(1)[:, None]


def relative_mahalanobis(vectors: np.ndarray, y: np.ndarray) -> RelativeMahalanobis:
    """Per-bear means with one covariance shared by the bears, and one Gaussian over all
    of them; both covariances Ledoit-Wolf shrunk, since a bear has fewer training chips
    than the embedding has dimensions. `y`: each vector's bear as an index 0..bears-1."""
    from sklearn.covariance import LedoitWolf

    x = np.asarray(vectors, dtype=np.float64)
    means = np.stack([x[y == i].mean(axis=0) for i in range(int(y.max()) + 1)])
    shared = LedoitWolf().fit(x - means[y])
    everything = LedoitWolf().fit(x)
    return RelativeMahalanobis(means, shared.precision_, everything.location_, everything.precision_)


def bear_sums(directions: np.ndarray, codes: np.ndarray, bears: int) -> np.ndarray:
    """bears x dim: the sum of each bear's unit vectors (their mean direction, unnormalised)."""
    sums = np.zeros((bears, directions.shape[1]))
    np.add.at(sums, codes, directions)
    return sums


def nearest_chip(sims: np.ndarray, codes: np.ndarray, bears: int) -> np.ndarray:
    """N x bears: from N x chips similarities, each bear's best chip (nearest neighbour per bear)."""
    out = np.full((len(sims), bears), -np.inf)
    order = np.argsort(codes, kind="stable")
    present, starts = np.unique(codes[order], return_index=True)
    if len(order) and len(sims):
        out[:, present] = np.maximum.reduceat(sims[:, order], starts, axis=1)
    return out


def leave_one_out_closeness(directions: np.ndarray, codes: np.ndarray, bears: int, how: str) -> np.ndarray:
    """N x bears cosine closeness of each training chip to each bear as if that chip had not been
    trained on: its nearest *other* chip (`how="knn"`), or the bears' means with it taken out of
    its own (`"ncm"`). What the nearest-neighbour namers' temperature is fitted on, and what
    the class stage's cross-validation measures them by."""
    if how == "knn":
        sims = directions @ directions.T
        np.fill_diagonal(sims, -np.inf)
        return nearest_chip(sims, codes, bears)
    sums = bear_sums(directions, codes, bears)
    out = directions @ unit(sums).T
    rows = np.arange(len(codes))
    own = sums[codes] - directions
    norm = np.linalg.norm(own, axis=1)
    out[rows, codes] = np.where(norm > 1e-12, (directions * own).sum(1) / np.maximum(norm, 1e-12), -1.0)
    return out


def fit_temperature(closeness: np.ndarray, codes: np.ndarray) -> float:
    """The scale that makes softmax(scale x closeness) the best-calibrated probabilities of the
    true bears (least log-loss): one number, so the ranking of bears stays the closeness's."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    finite = np.where(np.isfinite(closeness), closeness, -1.0)
    rows = np.arange(len(codes))

    def loss(log_scale: float) -> float:
        return float(-log_softmax(np.exp(log_scale) * finite, axis=1)[rows, codes].mean())

    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.1), np.log(1000.0)), method="bounded").x))


def known_bears(labels: Any) -> np.ndarray:
    """The bears `fit` will know, sorted: those with at least MIN_CHIPS training chips (the
    others stay unknown). For callers that split validation before fitting."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    return names[counts >= MIN_CHIPS]


class OpenSetClassifier(ClassifierMixin, BaseEstimator):
    """Names the bear with a calibrated SVM (`classifier="svm"`), the nearest training chip
    (`"knn"`) or the nearest bear's mean (`"ncm"`), and says "unknown" (`UNKNOWN`) for a chip
    whose familiarity is below the open-set threshold. Familiarity is the relative Mahalanobis
    score (`novelty="mahalanobis"`), the cosine similarity to the nearest known bear's mean
    (`"cosine"`) or to the nearest training chip (`"nearest"`). (Calibrated probabilities
    spread thin over many bears; distances in the metric-learnt space separate new bears far
    better.) The class stage chooses among them on the user's data (training/classify.py).

    Hyperparameters: `C`, `kernel`, `class_weight` and `random_state` of the SVM (SVC,
    one-vs-one, decision values aggregated per bear); `calibration`, the
    CalibratedClassifierCV method turning its decision values into probabilities ("temperature":
    one temperature, which keeps the SVM's choice of bear; kNN and NCM always take one
    temperature, fitted on their leave-one-out closeness); `classifier`; `novelty`, the
    familiarity score; `target_far` and `min_known_accept`, how `fit` chooses the threshold.

    Fitted: `classes_` (the known bears, sorted), `model_` (the calibrated SVM, trained on
    class indices into `classes_`; None for kNN and NCM), `scale_` (kNN and NCM's temperature),
    `centroids_` (each bear's mean direction, unit length), `chips_` and `chip_codes_` (the
    training chips' directions and bears, kept for kNN and the nearest-chip score), `novelty_`
    (the RelativeMahalanobis, None otherwise), `threshold_`, `threshold_note_` (how it was
    chosen), `target_met_` (did it meet `target_far` on unknown bears; None: none to measure),
    `n_features_in_`.

    `**fitted` takes the parts of a fitted classifier as earlier releases' dataclass did
    (`model, ids, centroids, threshold`, and `novelty` as a RelativeMahalanobis or None), so
    code that built one from parts still runs; new code fits."""

    def __init__(
        self,
        *,
        C: float = 1.0,
        kernel: Literal["linear", "rbf"] = "linear",
        class_weight: Literal["balanced"] | dict | None = "balanced",
        calibration: Literal["temperature", "sigmoid", "isotonic"] = "temperature",
        classifier: Literal["svm", "knn", "ncm"] = "svm",
        novelty: Literal["mahalanobis", "cosine", "nearest"] = "mahalanobis",
        target_far: float = 0.1,
        min_known_accept: float = 0.9,
        random_state: int | None = 0,
        **fitted: Any,
    ) -> None:
        self.C = C
        self.kernel = kernel
        self.class_weight = class_weight
        self.calibration = calibration
        self.classifier = classifier
        self.novelty = novelty
        self.target_far = target_far
        self.min_known_accept = min_known_accept
        self.random_state = random_state
        if fitted:
            unexpected = set(fitted) - {"model", "ids", "centroids", "threshold"}
            missing = {"ids", "centroids", "threshold"} - set(fitted)
            if unexpected or missing:
                raise TypeError(
                    f"OpenSetClassifier got unexpected keyword arguments {sorted(unexpected)}"
                    if unexpected
                    else f"OpenSetClassifier from parts needs {sorted(missing)} too"
                )
            self.__setstate__({**fitted, "novelty": None if isinstance(novelty, str) else novelty})

    # -- fitting -------------------------------------------------------------------------
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
    ) -> OpenSetClassifier:
        """Fit on the bears with at least MIN_CHIPS chips in `X` (the others stay unknown),
        then choose the threshold.

        `X_views`, `y_views`: augmented views of the training chips; they join them in the
        open-set Gaussians (not the SVM): the network has learnt the training chips by heart,
        and alone they understate how far a bear's new chips stray with pose, blur and
        occlusion. `X_val`, `y_val`: validation chips; those of bears in `classes_` are the
        known chips the threshold must keep, the others unknown bears, before `X_unknown`.
        `y_unknown`: the unknown chips' identities (None: one anonymous group), since the
        false-accept rate is averaged over identities. Without unknown chips the threshold
        keeps `min_known_accept` of the known validation chips (of the training chips where
        there are none), which is all that can be asked without strangers to measure."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        classes = known_bears(y)
        if len(classes) < 2:
            raise TooFewBears(
                f"the classifier needs at least 2 bears with {MIN_CHIPS} or more training chips; got {len(classes)}"
            )
        keep = np.isin(y, classes)
        X, codes = X[keep], np.searchsorted(classes, y[keep])
        # Probabilities are a softmax of the SVM's decision values at one temperature, fitted on
        # cross-validated decisions (folds limited by the rarest bear); the SVM itself is fitted
        # on all the training chips. One temperature keeps the SVM's own choice of bear.
        folds = int(min(5, max(2, np.bincount(codes).min())))
        # SVC trains one-vs-one (as BearID did) whatever the shape; "ovr" aggregates its decision
        # values per class, which the calibration needs (an "ovo" shape has one column per pair).
        weights = self.class_weight  # a dict names bears; the SVM is trained on their indices
        if isinstance(weights, dict):
            weights = {i: weights[c] for i, c in enumerate(classes.tolist()) if c in weights}
        svm = SVC(
            kernel=self.kernel,
            C=self.C,
            class_weight=weights,
            decision_function_shape="ovr",
            random_state=self.random_state,
        )
        directions = unit(X)
        self.classes_ = classes
        self.model_ = self.scale_ = None
        if self.classifier == "svm":
            self.model_ = CalibratedClassifierCV(svm, method=self.calibration, cv=folds, ensemble=False)
            self.model_.fit(directions, codes)
        elif self.classifier in ("knn", "ncm"):
            self.scale_ = fit_temperature(
                leave_one_out_closeness(directions, codes, len(classes), self.classifier), codes
            )
        else:
            raise ValueError(f"classifier must be 'svm', 'knn' or 'ncm', not {self.classifier!r}")
        self.centroids_ = unit(bear_sums(directions, codes, len(classes)))
        keep_chips = self.classifier == "knn" or self.novelty == "nearest"
        self.chips_, self.chip_codes_ = (directions, codes) if keep_chips else (None, None)
        self.novelty_ = None
        if self.novelty == "mahalanobis":
            x, labels = X, codes
            if X_views is not None and len(X_views):
                seen = np.isin(np.asarray(y_views), classes)
                x = np.concatenate([x, np.asarray(X_views)[seen]])
                labels = np.concatenate([codes, np.searchsorted(classes, np.asarray(y_views)[seen])])
            self.novelty_ = relative_mahalanobis(x, labels)
        elif self.novelty not in ("cosine", "nearest"):
            raise ValueError(f"novelty must be 'mahalanobis', 'cosine' or 'nearest', not {self.novelty!r}")
        known_x, known_y, unknown_x, unknown_y = self._validation(X_val, y_val, X_unknown, y_unknown)
        self.target_met_ = None
        if len(unknown_y):
            self.threshold_, self.threshold_note_ = self._choose_threshold(known_x, known_y, unknown_x, unknown_y)
        elif len(known_y):
            self.threshold_, self.threshold_note_ = self._keep_known(known_x, known_y, "known validation chips")
        else:  # over-familiar (the network learnt them), but all there is
            familiar = None  # a training chip is its own nearest chip: the score leaves it out
            if self.novelty == "nearest":
                familiar = leave_one_out_closeness(directions, codes, len(classes), "knn").max(axis=1)
            self.threshold_, self.threshold_note_ = self._keep_known(X, classes[codes], "training chips", familiar)
        return self

    def _validation(
        self, X_val: Any, y_val: Any, X_unknown: Any, y_unknown: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(known chips, their bears, unknown chips, their identities) from fit's parameters."""
        dim = self.n_features_in_
        empty = np.zeros((0, dim)), np.zeros(0, dtype=self.classes_.dtype)
        known_x, known_y = empty
        unknown_x, unknown_y = np.zeros((0, dim)), np.zeros(0, dtype=object)
        if X_val is not None and len(X_val):
            vx, vy = np.asarray(X_val), np.asarray(y_val)
            mask = np.isin(vy, self.classes_)
            known_x, known_y = vx[mask], vy[mask]
            unknown_x, unknown_y = vx[~mask], vy[~mask].astype(object)
        if X_unknown is not None and len(X_unknown):
            ux = np.asarray(X_unknown)
            uy = np.full(len(ux), UNKNOWN, dtype=object) if y_unknown is None else np.asarray(y_unknown, dtype=object)
            unknown_x, unknown_y = np.concatenate([unknown_x, ux]), np.concatenate([unknown_y, uy])
        return known_x, known_y, unknown_x, unknown_y

    def _keep_known(
        self, x: np.ndarray, labels: np.ndarray, what: str, familiar: np.ndarray | None = None
    ) -> tuple[float, str]:
        """With no strangers to measure: the highest familiarity that still accepts
        `min_known_accept` of these known chips (averaged over bears, as BAKS is)."""
        familiar = self.familiarity(x) if familiar is None else familiar
        truth = [str(v) for v in labels]
        threshold = float(
            max(t for t in np.unique(familiar) if balanced_accuracy(truth, familiar >= t) >= self.min_known_accept)
        )
        accepted = balanced_accuracy(truth, familiar >= threshold)
        return threshold, (
            f"no unknown bears in validation: keeps {accepted:.3f} of {len(truth)} {what} (balanced), "
            f"min_known_accept {self.min_known_accept:.2f}"
        )

    def _choose_threshold(
        self, known_x: np.ndarray, known_y: np.ndarray, unknown_x: np.ndarray, unknown_y: np.ndarray
    ) -> tuple[float, str]:
        """The lowest familiarity at which unknown bears are falsely accepted at about
        `target_far`, averaged over the unknown *identities* (as BAUS is): a stranger
        photographed often must not outweigh one photographed twice. It is capped where it
        would accept fewer than `min_known_accept` of the known bears' chips (averaged over
        bears, as BAKS is): one stranger that the embedding cannot tell from a known bear must
        not make the classifier turn away the bears it knows."""
        scores, labels = self.familiarity(unknown_x), np.array([str(v) for v in unknown_y])
        names = sorted(set(labels.tolist()))

        def far(t: float) -> float:  # unknown chips accepted, balanced over unknown bears as BAUS is
            return balanced_accuracy(labels.tolist(), scores >= t)

        # far() only steps down at the observed scores; take the lowest one that meets the target.
        candidates = np.unique(np.concatenate([scores, [scores.max() + 1e-6]]))
        threshold = float(next(t for t in candidates if far(t) <= self.target_far))
        self.target_met_ = True
        if not len(known_y):
            return (
                threshold,
                f"accepts {far(threshold):.3f} of {len(scores)} chips of {len(names)} unknown bears (balanced)",
            )
        familiar, truth = self.familiarity(known_x), [str(v) for v in known_y]

        def accepted(t: float) -> float:  # known chips accepted, balanced over known bears as BAKS is
            return balanced_accuracy(truth, familiar >= t)

        capped = ""
        self.target_met_ = True
        if accepted(threshold) < self.min_known_accept:
            self.target_met_ = False
            threshold = float(max(t for t in np.unique(familiar) if accepted(t) >= self.min_known_accept))
            worst = max(names, key=lambda name: np.mean(scores[labels == name] >= threshold))
            nearest = Counter(self.nearest(unknown_x[labels == worst])).most_common(1)[0][0]
            capped = (
                f"; capped to keep {self.min_known_accept:.2f} of known bears, so the false-accept target is not met: "
                f"{worst} passes for {nearest} {np.mean(scores[labels == worst] >= threshold):.2f} of the time"
            )
        return threshold, (
            f"accepts {far(threshold):.3f} of {len(scores)} chips of {len(names)} unknown bears (balanced) "
            f"and {accepted(threshold):.3f} of {len(truth)} known validation chips (balanced){capped}"
        )

    # -- using it ------------------------------------------------------------------------
    def _vectors(self, X: Any) -> np.ndarray:
        """X checked against the fit (an empty X is taken as it is: a photo with no faces)."""
        check_is_fitted(self)
        if isinstance(X, list | tuple) and not X:
            return np.zeros((0, self.n_features_in_))
        return validate_data(self, X, reset=False, ensure_min_samples=0)

    def closeness(self, X: Any) -> np.ndarray:
        """N x len(classes_), higher is more alike, by the familiarity score: minus the relative
        Mahalanobis distance to each known bear (`novelty_`), the cosine similarity to its
        nearest training chip ("nearest"), else to its mean ("cosine")."""
        x = self._vectors(X)
        if self.novelty_ is not None:
            return -self.novelty_.distances(x)
        if self.novelty == "nearest":
            return nearest_chip(unit(x) @ self.chips_.T, self.chip_codes_, len(self.classes_))
        return unit(x) @ self.centroids_.T

    def _naming(self, x: np.ndarray) -> np.ndarray:
        """kNN and NCM: N x len(classes_) cosine closeness to each bear's nearest chip or mean."""
        d = unit(x)
        if self.classifier == "knn":
            return nearest_chip(d @ self.chips_.T, self.chip_codes_, len(self.classes_))
        return d @ self.centroids_.T

    def familiarity(self, X: Any) -> np.ndarray:
        """Open-set score per chip: how much it is like the known bear it is most like."""
        near = self.closeness(X)
        return near.max(axis=1) if len(near) else np.zeros(0)

    def nearest(self, X: Any) -> list[str]:
        """The known bear each chip is most like, by the familiarity score."""
        near = self.closeness(X)
        return self.classes_[near.argmax(axis=1)].tolist() if len(near) else []

    def decision_function(self, X: Any) -> np.ndarray:
        """The SVM's decision values, N x len(classes_) (N for two bears, scikit-learn's
        convention): which bear, not whether it is a known one (that is `familiarity`)."""
        x = self._vectors(X)
        if len(x) == 0:
            return np.zeros((0, len(self.classes_)) if len(self.classes_) > 2 else 0)
        if self.model_ is None:
            near = self._naming(x)
            return near if len(self.classes_) > 2 else near[:, 1] - near[:, 0]
        return self.model_.calibrated_classifiers_[0].estimator.decision_function(unit(x))

    def predict_proba(self, X: Any) -> np.ndarray:
        """N x len(classes_) calibrated probabilities, columns in `classes_` order. They sum
        to 1 over the known bears: the chance of an unknown bear is not among them."""
        x = self._vectors(X)
        if len(x) == 0:
            return np.zeros((0, len(self.classes_)))
        if self.model_ is None:
            from scipy.special import softmax

            return softmax(self.scale_ * self._naming(x), axis=1)
        proba = self.model_.predict_proba(unit(x))
        order = [list(self.model_.classes_).index(i) for i in range(len(self.classes_))]
        return proba[:, order]

    def predict(self, X: Any) -> np.ndarray:
        """Each chip's bear, or `UNKNOWN` where its familiarity is below `threshold_`: an
        array of strings for bears named by strings (as bears are); labels of other kinds
        stay as they are unless a chip is unknown, when the array holds objects."""
        x = self._vectors(X)
        out = self.classes_[self.predict_proba(x).argmax(axis=1)]
        unknown = self.familiarity(x) < self.threshold_
        if unknown.any() or out.dtype.kind in "US":
            out = out.astype(np.result_type(out.dtype, np.array(UNKNOWN)) if out.dtype.kind in "US" else object)
            out[unknown] = UNKNOWN
        return out

    def predictions(self, embeddings: Any, top: int = 5) -> list[Prediction]:
        """Each chip's bear (or unknown), its probability, the best candidates and its familiarity."""
        out = []
        ids, x = self.ids, self._vectors(embeddings)
        for row, score in zip(self.predict_proba(x), self.familiarity(x)):
            best = np.argsort(-row)[:top]
            known = bool(score >= self.threshold_)
            out.append(
                Prediction(
                    ids[best[0]] if known else None,
                    known,
                    float(row[best[0]]),
                    [(ids[i], float(row[i])) for i in best],
                    float(score),
                )
            )
        return out

    @property
    def ids(self) -> list[str]:
        """The known bears as a list (`classes_`), as ids.json and the service name them."""
        return [str(c) for c in self.classes_]

    # -- pickles -------------------------------------------------------------------------
    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also the state of an earlier release's classifier, a dataclass whose fields
        (`model, ids, centroids, threshold, novelty`) are the fitted parts under other names:
        bundles already made must keep loading. Its SVM's settings become the parameters."""
        if "ids" in state and "classes_" not in state:
            model, novelty = state.get("model"), state.get("novelty")
            svm = getattr(model, "estimator", None)
            settings = svm.get_params() if hasattr(svm, "get_params") else {}
            state = {
                "C": settings.get("C", 1.0),
                "kernel": settings.get("kernel", "linear"),
                "class_weight": settings.get("class_weight", "balanced"),
                "calibration": getattr(model, "method", "temperature"),
                "novelty": "cosine" if novelty is None else "mahalanobis",
                "target_far": 0.1,
                "min_known_accept": 0.9,
                "random_state": settings.get("random_state", 0),
                "classes_": np.array(list(state["ids"]), dtype=str),
                "model_": model,
                "centroids_": np.asarray(state["centroids"]),
                "novelty_": novelty,
                "threshold_": float(state["threshold"]),
                "threshold_note_": "chosen by an earlier release",
                "n_features_in_": int(np.asarray(state["centroids"]).shape[1]),
            }
        # Fitted before kNN, NCM and the nearest-chip score: an SVM, and no chips kept.
        defaults = {"classifier": "svm", "scale_": None, "chips_": None, "chip_codes_": None, "target_met_": None}
        super().__setstate__({**defaults, **state})


# Where classifiers pickled by earlier releases find their classes now.
_MOVED = {"bearid.classifier": "bearid.classify"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(_MOVED.get(module, module), name)


def load_classifier(path: Path) -> OpenSetClassifier:
    """A pickled classifier (a bundle's, or a class stage's), also one an earlier release wrote."""
    with open(path, "rb") as fh:
        return _Unpickler(fh).load()
