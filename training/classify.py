"""Training and evaluating bearsvm: a linear one-vs-one SVM with bears weighed alike that
names the bear, with probabilities calibrated by one temperature, and an open-set threshold
on how familiar a chip is (relative Mahalanobis distance to the known bears by default, or
cosine similarity), chosen on validation where bears the classifier never saw stand in for
new bears. Why these choices: docs/experiments.md."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.covariance import LedoitWolf
from sklearn.svm import SVC

from bearid.classify import OpenSetClassifier, RelativeMahalanobis
from bearid.embed import unit
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text
from bearid.metrics import balanced_accuracy, roc_auc, topk
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded

MIN_CHIPS = 2  # calibration cross-validates: a bear needs two training chips to be known


def fit(train: Embedded, cfg: ClassifyConfig, views: Embedded | None = None) -> OpenSetClassifier:
    """Fit on the bears with at least MIN_CHIPS training chips (the others stay unknown).
    `views`, augmented views of the training chips, join them in the open-set Gaussians
    (not the SVM): the network has learnt the training chips by heart, and alone they
    understate how far a bear's new chips stray with pose, blur and occlusion."""
    counts = {label: train.labels.count(label) for label in set(train.labels)}
    ids = sorted(label for label, n in counts.items() if n >= MIN_CHIPS)
    if len(ids) < 2:
        raise BearIDError(
            f"the classifier needs at least 2 bears with {MIN_CHIPS} or more training chips; got {len(ids)}"
        )
    train = train.subset([i for i, label in enumerate(train.labels) if label in ids])
    y = np.array([ids.index(label) for label in train.labels])
    # Probabilities are a softmax of the SVM's decision values at one temperature, fitted on
    # cross-validated decisions (folds limited by the rarest bear); the SVM itself is fitted
    # on all the training chips. One temperature keeps the SVM's own choice of bear.
    folds = int(min(5, max(2, np.bincount(y).min())))
    # SVC trains one-vs-one (as BearID did) whatever the shape; "ovr" aggregates its decision
    # values per class, which the calibration needs (an "ovo" shape has one column per pair).
    svm = SVC(
        kernel=cfg.kernel, C=cfg.C, class_weight=cfg.class_weight, decision_function_shape="ovr", random_state=cfg.seed
    )
    model = CalibratedClassifierCV(svm, method="temperature", cv=folds, ensemble=False)
    directions = unit(train.vectors)
    model.fit(directions, y)
    centroids = unit(np.stack([directions[y == i].mean(axis=0) for i in range(len(ids))]))
    novelty = None
    if cfg.open_set == "mahalanobis":
        x, labels = train.vectors, y
        if views is not None:
            seen = [i for i, label in enumerate(views.labels) if label in ids]
            x = np.concatenate([x, views.vectors[seen]])
            labels = np.concatenate([y, np.array([ids.index(views.labels[i]) for i in seen], dtype=int)])
        novelty = relative_mahalanobis(x, labels)
    return OpenSetClassifier(model, ids, centroids, threshold=0.5, novelty=novelty)


def relative_mahalanobis(vectors: np.ndarray, y: np.ndarray) -> RelativeMahalanobis:
    """Per-bear means with one covariance shared by the bears, and one Gaussian over all
    of them; both covariances Ledoit-Wolf shrunk, since a bear has fewer training chips
    than the embedding has dimensions."""
    x = np.asarray(vectors, dtype=np.float64)
    means = np.stack([x[y == i].mean(axis=0) for i in range(int(y.max()) + 1)])
    shared = LedoitWolf().fit(x - means[y])
    everything = LedoitWolf().fit(x)
    return RelativeMahalanobis(means, shared.precision_, everything.location_, everything.precision_)


def choose_threshold(
    clf: OpenSetClassifier, known: Embedded, unknown: Embedded, target_far: float, min_known_accept: float = 0.9
) -> tuple[float, str]:
    """The lowest familiarity at which unknown bears are falsely accepted at about
    `target_far`, averaged over the unknown *identities* (as BAUS is): a stranger photographed
    often must not outweigh one photographed twice. It is capped where it would accept
    fewer than `min_known_accept` of the known bears' chips (averaged over bears, as BAKS
    is): one stranger that the embedding cannot tell from a known bear must not make the
    classifier turn away the bears it knows."""
    if len(unknown.labels) == 0:
        return clf.threshold, "no unknown bears in validation: kept the default threshold"
    scores, labels = clf.familiarity(unknown.vectors), np.array(unknown.labels)
    names = sorted(set(unknown.labels))

    def far(t: float) -> float:  # unknown chips accepted, balanced over unknown bears as BAUS is
        return balanced_accuracy(unknown.labels, scores >= t)

    # far() only steps down at the observed scores; take the lowest one that meets the target.
    candidates = np.unique(np.concatenate([scores, [scores.max() + 1e-6]]))
    threshold = float(next(t for t in candidates if far(t) <= target_far))
    if not len(known.labels):
        return (
            threshold,
            f"accepts {far(threshold):.3f} of {len(scores)} chips of {len(names)} unknown bears (balanced)",
        )
    familiar = clf.familiarity(known.vectors)

    def accepted(t: float) -> float:  # known chips accepted, balanced over known bears as BAKS is
        return balanced_accuracy(known.labels, familiar >= t)

    capped = ""
    if accepted(threshold) < min_known_accept:
        threshold = float(max(t for t in np.unique(familiar) if accepted(t) >= min_known_accept))
        worst = max(names, key=lambda name: np.mean(scores[labels == name] >= threshold))
        nearest = Counter(clf.nearest(unknown.vectors[labels == worst])).most_common(1)[0][0]
        capped = (
            f"; capped to keep {min_known_accept:.2f} of known bears, so the false-accept target is not met: "
            f"{worst} passes for {nearest} {np.mean(scores[labels == worst] >= threshold):.2f} of the time"
        )
    return threshold, (
        f"accepts {far(threshold):.3f} of {len(scores)} chips of {len(names)} unknown bears (balanced) "
        f"and {accepted(threshold):.3f} of {len(known.labels)} known validation chips (balanced){capped}"
    )


def evaluate(clf: OpenSetClassifier, known: Embedded, unknown: Embedded) -> dict:
    """Closed-set top-1/top-5 on known bears; open-set BAKS, BAUS and AUROC; confusion."""
    out: dict = {"known_chips": len(known.labels), "unknown_chips": len(unknown.labels)}
    pk = clf.probabilities(known.vectors)
    if len(known.labels):
        out["top1"] = round(topk(pk, clf.ids, known.labels, 1), 4)
        out["top5"] = round(topk(pk, clf.ids, known.labels, 5), 4)
        preds = clf.predictions(known.vectors)
        out["baks"] = round(balanced_accuracy(known.labels, [p.bear_id == t for p, t in zip(preds, known.labels)]), 4)
        out["confusion"] = confusion(known.labels, [p.bear_id or "unknown" for p in preds], clf.ids)
    if len(unknown.labels):
        rejected = clf.familiarity(unknown.vectors) < clf.threshold
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
