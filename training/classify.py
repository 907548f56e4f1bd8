"""Training and evaluating bearsvm: a namer (a linear one-vs-one SVM with bears weighed alike,
the nearest training chip, or the nearest bear's mean) with probabilities calibrated by one
temperature, and an open-set threshold on how familiar a chip is (relative Mahalanobis
distance to the known bears, cosine similarity to their means, or to the nearest training
chip), chosen on validation where bears the classifier never saw stand in for new bears.

Which namer, which C and which familiarity score are chosen here on the user's own data
(`choose`), since what suits one network's embeddings collapses on another's: C 1 named the
synthetic world's bears well and 4% of real ones through dlib's face ResNet. Why these
choices: docs/experiments.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bearid.classify import (
    MIN_CHIPS,
    OpenSetClassifier,
    bear_sums,
    known_bears,
    nearest_chip,
)
from bearid.embed import unit
from bearid.fsio import atomic_write_text
from bearid.metrics import balanced_accuracy, roc_auc, topk
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded

__all__ = [
    "MIN_CHIPS",
    "Choice",
    "choose",
    "classifier",
    "confusion",
    "evaluate",
    "fit",
    "known_bears",
    "write_predictions",
]

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # decades: a network's cluster spread sets the scale
NAMERS = ("svm", "knn", "ncm")
SCORES = ("mahalanobis", "cosine", "nearest")
FOLDS = 5


@dataclass
class Choice:
    """What the class stage chose and why: the figures of every candidate, and what they were
    measured on. `metrics.json` keeps it as `chosen`."""

    classifier: str
    C: float | None  # the SVM's; None for kNN and NCM
    open_set: str
    naming_on: str
    open_set_on: str
    naming_grid: list[dict] = field(default_factory=list)  # {"classifier", "C", "top1"}
    open_set_grid: list[dict] = field(default_factory=list)  # {"score", "auroc"}

    def record(self) -> dict:
        return asdict(self)


def classifier(cfg: ClassifyConfig, choice: Choice | None = None) -> OpenSetClassifier:
    """The unfitted estimator a class stage's config describes (`open_set` is its `novelty`,
    `seed` its `random_state`), with the settings `choice` made where the config says "auto"."""
    namer = choice.classifier if choice else cfg.classifier
    C = choice.C if choice and choice.C is not None else cfg.C
    return OpenSetClassifier(
        C=1.0 if C == "auto" else float(C),
        kernel=cfg.kernel,
        class_weight=cfg.class_weight,
        classifier="svm" if namer == "auto" else namer,
        novelty=choice.open_set if choice else ("mahalanobis" if cfg.open_set == "auto" else cfg.open_set),
        target_far=cfg.target_far,
        min_known_accept=cfg.min_known_accept,
        random_state=cfg.seed,
    )


def _namers(cfg: ClassifyConfig) -> list[tuple[str, float | None]]:
    """The (classifier, C) candidates the config leaves open."""
    out: list[tuple[str, float | None]] = []
    if cfg.classifier in ("auto", "svm"):
        out += [("svm", C) for C in (C_GRID if cfg.C == "auto" else (float(cfg.C),))]
    out += [(n, None) for n in ("knn", "ncm") if cfg.classifier in ("auto", n)]
    return out


def _name(namer: str, C: float | None, cfg: ClassifyConfig, fit_x, fit_codes, bears: int, probe_x) -> np.ndarray:
    """Each probe's best bear (an index) by a namer fitted on unit vectors `fit_x`: the SVM's
    decision values aggregated per bear as OpenSetClassifier's, the nearest chip, or mean."""
    if namer == "svm":
        import warnings

        from sklearn.svm import SVC

        svm = SVC(
            kernel=cfg.kernel, C=C, class_weight=cfg.class_weight, decision_function_shape="ovr", random_state=cfg.seed
        )
        with warnings.catch_warnings():  # a bear of one chip in a fold is a class of one sample, and meant
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            svm.fit(fit_x, fit_codes)
        decision = svm.decision_function(probe_x)
        best = (decision > 0).astype(int) if decision.ndim == 1 else decision.argmax(axis=1)
        return svm.classes_[best]
    if namer == "knn":
        return nearest_chip(probe_x @ fit_x.T, fit_codes, bears).argmax(axis=1)
    return (probe_x @ unit(bear_sums(fit_x, fit_codes, bears)).T).argmax(axis=1)


def one_per_bear_folds(codes: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, probe rows) per fold, each fold probing one chip of every bear and fitting on
    the rest: every bear is in every fold, and a bear of two chips is left out one at a time.
    (Stratified k-fold would fit on half the chips where the rarest bear has two: an SVM's C
    does not mean the same on half the data.)"""
    rng = np.random.default_rng(seed)
    order = {b: rng.permutation(np.flatnonzero(codes == b)) for b in np.unique(codes)}
    k = int(min(folds, max(len(rows) for rows in order.values())))
    out = []
    for f in range(k):
        probe = np.array(sorted(rows[f % len(rows)] for rows in order.values()))
        out.append((np.setdiff1d(np.arange(len(codes)), probe), probe))
    return out


def _choose_namer(cfg: ClassifyConfig, x: np.ndarray, y: np.ndarray, known: Embedded | None):
    """(classifier, C, on, grid): the namer with the best top-1 balanced over bears, measured
    on the training chips cross-validated (one chip of every bear held out per fold) and the
    known validation chips together: with a chip or two a bear, validation alone is too
    noisy to choose on (on a long-tailed world it chose C 10 where test preferred C 100).
    Equal figures go to the SVM, its C nearest 1."""
    candidates = sorted(_namers(cfg), key=lambda nc: (nc[0] != "svm", abs(np.log10(nc[1] or 1.0)), -(nc[1] or 0)))
    classes = np.unique(y)
    codes, d = np.searchsorted(classes, y), unit(x)
    if len(candidates) == 1:
        return (*candidates[0], "the config (nothing to choose)", [])
    split = one_per_bear_folds(codes, FOLDS, cfg.seed)
    folds = [(fit, d[probe], codes[probe]) for fit, probe in split]
    on = f"cross-validation over the training chips ({len(split)} folds, one chip of every bear held out in each)"
    if known is not None and len(known.labels):  # validation joins as one more fold: fewer chips, less noise
        seen = [i for i, b in enumerate(known.labels) if b in set(classes.tolist())]
        truth = np.searchsorted(classes, np.asarray(known.labels)[seen])
        folds.append((np.arange(len(codes)), unit(known.vectors[seen]), truth))
        on += f" and {len(truth)} known validation chips"
    grid = []
    for namer, C in candidates:
        truth, right = [], []
        for fit_rows, probe_x, probe_codes in folds:
            named = _name(namer, C, cfg, d[fit_rows], codes[fit_rows], len(classes), probe_x)
            truth += classes[probe_codes].tolist()
            right += (named == probe_codes).tolist()
        grid.append({"classifier": namer, "C": C, "top1": round(balanced_accuracy(truth, right), 4)})
    best = max(grid, key=lambda row: row["top1"])  # the first of equals
    grid.sort(key=lambda row: (row["classifier"], row["C"] or 0))
    return best["classifier"], best["C"], on, grid


def _familiarity(score: str, x, y, views: Embedded | None, probe_x) -> np.ndarray:
    """Each probe's familiarity by `score`, from the known bears' chips `x`, `y` (and their
    augmented views): OpenSetClassifier's own score, on an NCM namer that costs nothing to fit."""
    clf = OpenSetClassifier(classifier="ncm", novelty=score, min_known_accept=1.0)
    clf.fit(x, y, X_views=None if views is None else views.vectors, y_views=None if views is None else views.labels)
    return clf.familiarity(probe_x)


def _choose_score(cfg: ClassifyConfig, x, y, views: Embedded | None, known: Embedded | None, unknown: Embedded | None):
    """(score, on, grid): the familiarity score that best tells known bears' chips from new
    bears' (AUROC), on validation when it holds both, else cross-validated with the training
    bears grouped into folds, each fold's bears playing the strangers to the rest (whose
    third and later chips are held out as the known chips)."""
    from sklearn.model_selection import GroupKFold

    candidates = list(SCORES) if cfg.open_set == "auto" else [cfg.open_set]
    if len(candidates) == 1:
        return candidates[0], "the config (nothing to choose)", []
    trials = []  # (fit x, fit y, known probes, stranger probes)
    if known is not None and unknown is not None and len(known.labels) and len(set(unknown.labels)) >= 2:
        trials.append((x, y, known.vectors, unknown.vectors))
        on = f"validation ({len(known.labels)} known chips, {len(set(unknown.labels))} unknown bears)"
    else:
        bears = np.unique(y)
        k = int(min(FOLDS, len(bears) // 2))
        if k >= 2:
            for rest, strangers in GroupKFold(n_splits=k).split(x, y, groups=y):
                probe = np.zeros(len(y), bool)
                for bear in np.unique(y[rest]):
                    rows = rest[y[rest] == bear]
                    probe[rows[2:]] = True  # two chips stay to fit the bear
                fit_rows = np.setdiff1d(rest, np.flatnonzero(probe))
                if probe.any() and len(np.unique(y[fit_rows])) >= 2:
                    trials.append((x[fit_rows], y[fit_rows], x[probe], x[strangers]))
        on = f"cross-validation over the training bears ({len(trials)} folds grouped by bear)"
    if not trials:
        return "mahalanobis", "too few bears to choose (fewer than 4, or no bear with 3 chips): the default", []
    grid = []
    for score in candidates:
        aucs = []
        for fit_x, fit_y, known_x, stranger_x in trials:
            seen = None if views is None else views.subset([i for i, b in enumerate(views.labels) if b in set(fit_y)])
            fam = _familiarity(score, fit_x, fit_y, seen, np.concatenate([known_x, stranger_x]))
            aucs.append(roc_auc(fam, np.r_[np.ones(len(known_x), bool), np.zeros(len(stranger_x), bool)]))
        grid.append({"score": score, "auroc": round(float(np.mean(aucs)), 4)})
    best = max(grid, key=lambda row: row["auroc"])
    return best["score"], on, grid


def choose(
    train: Embedded,
    cfg: ClassifyConfig,
    views: Embedded | None = None,
    *,
    known: Embedded | None = None,
    unknown: Embedded | None = None,
) -> Choice:
    """The settings the config leaves to the data ("auto": the classifier, C, the open-set
    score), each chosen on the user's own chips (see `_choose_namer`, `_choose_score`)."""
    labelled = train.labelled()
    keep = np.isin(np.asarray(labelled.labels), known_bears(labelled.labels))
    x, y = labelled.vectors[keep], np.asarray(labelled.labels)[keep]
    namer, C, naming_on, naming_grid = _choose_namer(cfg, x, y, known)
    score, score_on, score_grid = _choose_score(cfg, x, y, views, known, unknown)
    return Choice(namer, C if namer == "svm" else None, score, naming_on, score_on, naming_grid, score_grid)


def fit(
    train: Embedded,
    cfg: ClassifyConfig,
    views: Embedded | None = None,
    *,
    known: Embedded | None = None,
    unknown: Embedded | None = None,
    choice: Choice | None = None,
) -> OpenSetClassifier:
    """The config's classifier (with what `choice` chose) fitted on `train` (bears with fewer
    than MIN_CHIPS chips stay unknown), its open-set Gaussians on the augmented `views` too,
    and its threshold on validation: `known`, chips of the bears it knows, against `unknown`,
    bears it never saw standing in for new bears (OpenSetClassifier.fit says how)."""
    return classifier(cfg, choice).fit(
        train.vectors,
        train.labels,
        X_views=None if views is None else views.vectors,
        y_views=None if views is None else views.labels,
        X_val=None if known is None else known.vectors,
        y_val=None if known is None else known.labels,
        X_unknown=None if unknown is None else unknown.vectors,
        y_unknown=None if unknown is None else unknown.labels,
    )


def evaluate(clf: OpenSetClassifier, known: Embedded, unknown: Embedded) -> dict:
    """Closed-set top-1/top-5 on known bears; open-set BAKS, BAUS and AUROC; confusion."""
    out: dict = {"known_chips": len(known.labels), "unknown_chips": len(unknown.labels)}
    pk = clf.predict_proba(known.vectors)
    if len(known.labels):
        out["top1"] = round(topk(pk, clf.ids, known.labels, 1), 4)
        out["top5"] = round(topk(pk, clf.ids, known.labels, 5), 4)
        preds = clf.predictions(known.vectors)
        out["baks"] = round(balanced_accuracy(known.labels, [p.bear_id == t for p, t in zip(preds, known.labels)]), 4)
        out["confusion"] = confusion(known.labels, [p.bear_id or "unknown" for p in preds], clf.ids)
    if len(unknown.labels):
        rejected = clf.familiarity(unknown.vectors) < clf.threshold_
        out["baus"] = round(balanced_accuracy(unknown.labels, list(rejected)), 4)
    if len(known.labels) and len(unknown.labels):
        scores = np.concatenate([clf.familiarity(known.vectors), clf.familiarity(unknown.vectors)])
        is_known = np.concatenate([np.ones(len(known.labels), bool), np.zeros(len(unknown.labels), bool)])
        out["auroc"] = round(roc_auc(scores, is_known), 4)
    return out


def confusion(truth: list[str], predicted: list[str], ids: list[str]) -> dict:
    names = [*ids, "unknown"]
    index = {n: i for i, n in enumerate(names)}
    m = np.zeros((len(names), len(names)), dtype=int)
    for t, p in zip(truth, predicted):
        if t in index:
            m[index[t], index[p]] += 1
    return {"labels": names, "matrix": m.tolist()}


def write_predictions(folder: Path, clf: OpenSetClassifier, data: dict[str, Embedded]) -> None:
    """<split>.json in `folder` (a class stage's class_meta/): per chip, the truth and the prediction."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, e in data.items():
        rows = [
            {
                "chip": p,
                "truth": t or None,
                "bear_id": pr.bear_id,
                "known": pr.known,
                "confidence": round(pr.confidence, 4),
            }
            for p, t, pr in zip(e.paths, e.labels, clf.predictions(e.vectors))
        ]
        atomic_write_text(folder / f"{name}.json", json.dumps(rows, indent=1))
