"""bearsvm at inference: an SVM over embeddings that names the bear, or says "unknown".

The classifier is pickled in the bundle (and unpickled only after its checksum is verified)
and used by evaluation and the service alike. It takes the embedding network's outputs as they are,
before L2 normalisation: the SVM and the cosine score use their direction (the embedding),
the Mahalanobis open-set score uses their length too.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bearid.embed import unit


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


@dataclass
class OpenSetClassifier:
    """A fitted scikit-learn classifier with `predict_proba` (it names the bear), each known
    bear's mean embedding, and the open-set threshold: a chip whose familiarity is below it
    is an unknown bear. Familiarity is the `novelty` score where there is one, else the
    cosine similarity to the nearest known bear's mean. (Calibrated probabilities spread
    thin over many bears; distances in the metric-learnt space separate new bears far
    better.)"""

    model: object
    ids: list[str]
    centroids: np.ndarray  # len(ids) x dim, unit length
    threshold: float
    novelty: RelativeMahalanobis | None = None  # None: cosine similarity (and bundles made before it)

    def closeness(self, embeddings: np.ndarray) -> np.ndarray:
        """N x len(ids), higher is more alike: minus the relative Mahalanobis distance to each
        known bear (the `novelty` score), else the cosine similarity to its mean."""
        if self.novelty is not None:
            return -self.novelty.distances(embeddings)
        return unit(embeddings) @ self.centroids.T

    def familiarity(self, embeddings: np.ndarray) -> np.ndarray:
        """Open-set score per chip: how much it is like the known bear it is most like."""
        return self.closeness(embeddings).max(axis=1) if len(embeddings) else np.zeros(0)

    def nearest(self, embeddings: np.ndarray) -> list[str]:
        """The known bear each chip is most like, by the familiarity score."""
        return [self.ids[i] for i in self.closeness(embeddings).argmax(axis=1)] if len(embeddings) else []

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """N x len(ids) calibrated probabilities, columns in `ids` order."""
        if len(embeddings) == 0:
            return np.zeros((0, len(self.ids)))
        proba = self.model.predict_proba(unit(embeddings))  # type: ignore[attr-defined]
        order = [list(self.model.classes_).index(i) for i in range(len(self.ids))]  # type: ignore[attr-defined]
        return proba[:, order]

    def predictions(self, embeddings: np.ndarray, top: int = 5) -> list[Prediction]:
        """Each chip's bear (or unknown), its probability, the best candidates and its familiarity."""
        out = []
        for row, score in zip(self.probabilities(embeddings), self.familiarity(embeddings)):
            best = np.argsort(-row)[:top]
            known = bool(score >= self.threshold)
            out.append(
                Prediction(
                    self.ids[best[0]] if known else None,
                    known,
                    float(row[best[0]]),
                    [(self.ids[i], float(row[i])) for i in best],
                    float(score),
                )
            )
        return out


# Where classifiers pickled by earlier releases find their classes now.
_MOVED = {"bearid.classifier": "bearid.classify"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(_MOVED.get(module, module), name)


def load_classifier(path: Path) -> OpenSetClassifier:
    """A pickled classifier (a bundle's, or a class stage's), also one an earlier release wrote."""
    with open(path, "rb") as fh:
        return _Unpickler(fh).load()
