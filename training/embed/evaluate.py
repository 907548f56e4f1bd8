"""Measuring the embed stage: verification AUC over pairs of chips, and 1-NN identification
of query chips against a gallery of known ones."""

from __future__ import annotations

import numpy as np

from bearid.embed import unit
from bearid.metrics import roc_auc, topk
from bearid.training.embed.embeddings import Embedded


def pairs(e: Embedded) -> tuple[np.ndarray, np.ndarray]:
    """(same bear?, cosine similarity) of every pair of labelled chips."""
    keep = [i for i, label in enumerate(e.labels) if label]
    v = unit(e.vectors[keep])
    lab = np.array([e.labels[i] for i in keep])
    i, j = np.triu_indices(len(keep), k=1)
    return lab[i] == lab[j], (v[i] * v[j]).sum(axis=1)


def embedding_report(queries: Embedded, gallery: Embedded, classes: list[str]) -> dict:
    """Verification AUC over all pairs of labelled chips; 1-NN top-k for known bears."""
    same, sims = pairs(queries)
    out = {"verification_auc": round(roc_auc(sims, same), 4)}
    known = [i for i, label in enumerate(queries.labels) if label in classes]
    if known:
        g_labels = np.array(gallery.labels)
        sim = unit(queries.vectors[known]) @ unit(gallery.vectors).T
        scores = np.stack([sim[:, g_labels == c].max(axis=1) for c in classes], axis=1)
        truth = [queries.labels[i] for i in known]
        out["nn_top1"] = round(topk(scores, classes, truth, 1), 4)
        out["nn_top5"] = round(topk(scores, classes, truth, 5), 4)
    return out
