"""Training and evaluating bearsvm: a linear one-vs-one SVM with bears weighed alike that
names the bear, with probabilities calibrated by one temperature, and an open-set threshold
on how familiar a chip is (relative Mahalanobis distance to the known bears by default, or
cosine similarity), chosen on validation where bears the classifier never saw stand in for
new bears. Why these choices: docs/experiments.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bearid.classify import MIN_CHIPS, OpenSetClassifier, known_bears
from bearid.fsio import atomic_write_text
from bearid.metrics import balanced_accuracy, roc_auc, topk
from bearid.training.config import ClassifyConfig
from bearid.training.embed.embeddings import Embedded

__all__ = ["MIN_CHIPS", "classifier", "confusion", "evaluate", "fit", "known_bears", "write_predictions"]


def classifier(cfg: ClassifyConfig) -> OpenSetClassifier:
    """The unfitted estimator a class stage's config describes (`open_set` is its `novelty`,
    `seed` its `random_state`)."""
    return OpenSetClassifier(
        C=cfg.C,
        kernel=cfg.kernel,
        class_weight=cfg.class_weight,
        novelty=cfg.open_set,
        target_far=cfg.target_far,
        min_known_accept=cfg.min_known_accept,
        random_state=cfg.seed,
    )


def fit(
    train: Embedded,
    cfg: ClassifyConfig,
    views: Embedded | None = None,
    *,
    known: Embedded | None = None,
    unknown: Embedded | None = None,
) -> OpenSetClassifier:
    """The config's classifier fitted on `train` (bears with fewer than MIN_CHIPS chips stay
    unknown), its open-set Gaussians on the augmented `views` too, and its threshold on
    validation: `known`, chips of the bears it knows, against `unknown`, bears it never saw
    standing in for new bears (OpenSetClassifier.fit says how)."""
    return classifier(cfg).fit(
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
