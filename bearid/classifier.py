"""bearsvm at inference: an SVM over embeddings that names the bear, or says "unknown".

The classifier is pickled in the bundle (after its checksum is verified) and used by
evaluation and the service alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    bear_id: str | None  # None: an unknown bear
    known: bool
    confidence: float  # calibrated probability of the best bear
    candidates: list[tuple[str, float]] = field(default_factory=list)  # best first
    familiarity: float = 0.0  # cosine similarity to the nearest known bear (the open-set score)


@dataclass
class OpenSetClassifier:
    """A fitted scikit-learn classifier with `predict_proba` (it names the bear), each known
    bear's mean embedding, and the open-set threshold: a chip whose cosine similarity to
    every known bear's mean is below it is an unknown bear. (Calibrated probabilities
    spread thin over many bears; similarity in the metric-learnt space separates new bears
    far better.)"""

    model: object
    ids: list[str]
    centroids: np.ndarray  # len(ids) x dim, unit length
    threshold: float
    version: int = 2

    def familiarity(self, embeddings: np.ndarray) -> np.ndarray:
        """Open-set score per chip: cosine similarity to the nearest known bear."""
        if len(embeddings) == 0:
            return np.zeros(0)
        return (np.asarray(embeddings, dtype=np.float64) @ self.centroids.T).max(axis=1)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """N x len(ids) calibrated probabilities, columns in `ids` order."""
        if len(embeddings) == 0:
            return np.zeros((0, len(self.ids)))
        proba = self.model.predict_proba(np.asarray(embeddings, dtype=np.float64))  # type: ignore[attr-defined]
        order = [list(self.model.classes_).index(i) for i in range(len(self.ids))]  # type: ignore[attr-defined]
        return proba[:, order]

    def predict(self, embeddings: np.ndarray, top: int = 5) -> list[Prediction]:
        out = []
        for row, score in zip(self.probabilities(embeddings), self.familiarity(embeddings)):
            best = np.argsort(-row)[:top]
            known = bool(score >= self.threshold)
            out.append(Prediction(self.ids[best[0]] if known else None, known, float(row[best[0]]),
                                  [(self.ids[i], float(row[i])) for i in best], float(score)))
        return out
