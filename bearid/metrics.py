"""The field's measures: box overlap, detection AP and landmark NME (the BearID paper's),
verification ROC/AUC, top-k identification, and open-set balanced accuracies (BAKS, BAUS)
with AUROC. NumPy only: training's evaluation and the promotion gate both measure here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


def intersection(a: Box, b: Box) -> float:
    """Area shared by two (left, top, width, height) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Match:
    image: int
    pred: int
    truth: int
    iou: float


def match_detections(preds: list[list[tuple[Box, float]]], truths: list[list[Box]], threshold: float = 0.5):
    """Greedy matching per image, highest score first. Returns (scores, is_true_positive,
    matches, number of true faces)."""
    scores, hits, matches = [], [], []
    total = 0
    for i, (pred, truth) in enumerate(zip(preds, truths)):
        total += len(truth)
        used: set[int] = set()
        for j in sorted(range(len(pred)), key=lambda k: -pred[k][1]):
            box, score = pred[j]
            best, best_iou = -1, threshold
            for t, gt in enumerate(truth):
                if t not in used and (v := iou(box, gt)) >= best_iou:
                    best, best_iou = t, v
            scores.append(score)
            hits.append(best >= 0)
            if best >= 0:
                used.add(best)
                matches.append(Match(i, j, best, best_iou))
    return np.array(scores), np.array(hits, dtype=bool), matches, total


def average_precision(scores: np.ndarray, hits: np.ndarray, total: int) -> float:
    """Area under the precision/recall curve (all points, VOC 2010+ style)."""
    if total == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    for k in range(len(mpre) - 2, -1, -1):
        mpre[k] = max(mpre[k], mpre[k + 1])
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]).sum())


def detection_report(preds, truths, threshold: float, iou_threshold: float = 0.5) -> dict:
    """AP@0.5 over all scores, and precision / recall at the operating threshold."""
    scores, hits, matches, total = match_detections(preds, truths, iou_threshold)
    ap = average_precision(scores, hits, total)
    keep = scores >= threshold
    tp = int(hits[keep].sum())
    return {
        "ap50": round(ap, 4),
        "precision": round(tp / max(1, int(keep.sum())), 4),
        "recall": round(tp / max(1, total), 4),
        "faces": total,
        "detections": int(keep.sum()),
    }


def nme(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark error of one face over its inter-ocular distance (rows: leye, reye, ...)."""
    eyes = np.linalg.norm(truth[0] - truth[1])
    return float(np.linalg.norm(pred - truth, axis=1).mean() / max(eyes, 1e-6))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative; ties half)."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):  # average ranks of ties
        tie = allv == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores)
    p = positive[order]
    tpr = np.concatenate([[0], np.cumsum(p) / max(1, p.sum())])
    fpr = np.concatenate([[0], np.cumsum(~p) / max(1, (~p).sum())])
    return fpr, tpr


def topk(scores: np.ndarray, classes: list[str], truth: list[str], k: int) -> float:
    """Share of rows whose true class is among the k best-scored classes."""
    best = np.argsort(-scores, axis=1)[:, :k]
    names = np.array(classes)
    return float(np.mean([t in names[row] for t, row in zip(truth, best)])) if truth else float("nan")


def balanced_accuracy(truth: list[str], correct: list[bool]) -> float:
    """Mean over classes of the per-class accuracy (classes in sorted order, so the sum, and
    a threshold compared with it, does not depend on the order the chips came in)."""
    per: dict[str, list[bool]] = defaultdict(list)
    for t, c in zip(truth, correct):
        per[t].append(c)
    return float(np.mean([np.mean(per[k]) for k in sorted(per)])) if per else float("nan")


def bootstrap_by_bear(
    truth: list[str], correct: list[bool], balanced: bool = True, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of a per-chip accuracy, resampling *bears* (each
    drawn bear brings all its chips): with a test split of a dozen bears, which bears it holds
    moves the figure more than which chips. `balanced`: the mean of per-bear accuracies (BAKS,
    BAUS), else the share of chips right (top-1)."""
    per: dict[str, list[bool]] = defaultdict(list)
    for t, c in zip(truth, correct):
        per[t].append(bool(c))
    if not per:
        return float("nan"), float("nan")
    bears = sorted(per)
    rights = np.array([sum(per[b]) for b in bears], dtype=float)
    counts = np.array([len(per[b]) for b in bears], dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(bears), size=(rounds, len(bears)))
    if balanced:
        values = (rights / counts)[draws].mean(axis=1)
    else:
        values = rights[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)
