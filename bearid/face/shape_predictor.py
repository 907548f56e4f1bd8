"""dlib's shape predictor (Kazemi and Sullivan's cascade of regression trees), run in NumPy:
the landmark model of an imported bearface. The arrays are read once from dlib's file
(`bearid.dlibformat.shape_predictor`) and kept in the bundle as a checksummed .npz (no
pickle), so serving needs neither dlib nor torch.

It follows dlib's own arithmetic (dlib/image_processing/shape_predictor.h), so the points
are dlib's: the shape starts as the mean shape in the face box; each cascade reads grey
levels at pixels placed relative to the current shape (through the similarity that takes
the mean shape to it), and every tree of the cascade adds the offset of the leaf those
pixels lead to.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from bearid.errors import BearIDError


@dataclass
class ShapeModel:
    initial_shape: np.ndarray  # parts x 2, in the face box's unit square
    split_idx1: np.ndarray  # cascades x trees x splits: feature pixel indices
    split_idx2: np.ndarray
    split_thresh: np.ndarray  # cascades x trees x splits
    leaf_values: np.ndarray  # cascades x trees x leaves x parts x 2
    anchor_idx: np.ndarray  # cascades x pixels: the part each feature pixel hangs from
    deltas: np.ndarray  # cascades x pixels x 2: its offset from that part

    @property
    def parts(self) -> int:
        return len(self.initial_shape)

    def check(self) -> ShapeModel:
        """Refuse arrays that do not fit together (a damaged or foreign file)."""
        c, t, s = self.split_idx1.shape
        pixels = self.anchor_idx.shape[1]
        ok = (
            self.split_idx2.shape == self.split_thresh.shape == (c, t, s)
            and self.leaf_values.shape == (c, t, s + 1, self.parts, 2)
            and self.deltas.shape == (c, pixels, 2)
            and self.anchor_idx.shape[0] == c
            and self.split_idx1.min(initial=0) >= 0
            and max(self.split_idx1.max(initial=0), self.split_idx2.max(initial=0)) < pixels
            and self.anchor_idx.min(initial=0) >= 0
            and self.anchor_idx.max(initial=0) < self.parts
        )
        if not ok:
            raise BearIDError("a shape predictor whose arrays do not fit together")
        return self

    def save(self, path: Path) -> None:
        from bearid.fsio import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> ShapeModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(**{f.name: data[f.name] for f in fields(cls)}).check()
        except (OSError, KeyError, ValueError) as exc:
            raise BearIDError(f"{path}: not a BearID shape model ({exc})") from None

    def predict(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The parts (parts x 2, integer pixel positions, as dlib gives them) of the face in
        `box` (left, top, right, bottom, inclusive, as dlib's rectangle) of an H x W x 3
        uint8 RGB image (or H x W grey)."""
        grey = image if image.ndim == 2 else image.astype(np.uint16).sum(axis=2) // 3  # dlib: integer mean
        h, w = grey.shape
        left, top, right, bottom = box
        origin, size = np.array([left, top], np.float64), np.array([right - left, bottom - top], np.float64)
        current = self.initial_shape.astype(np.float32).copy()
        for c in range(len(self.split_idx1)):
            m = similarity(self.initial_shape, current).astype(np.float32)
            q = self.deltas[c] @ m.T + current[self.anchor_idx[c]]  # float32, as dlib
            p = np.floor(origin + q.astype(np.float64) * size + 0.5).astype(np.int64)
            inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
            values = np.zeros(len(p), np.float32)
            values[inside] = grey[p[inside, 1], p[inside, 0]]
            node = np.zeros(self.split_idx1.shape[1], np.int64)
            splits = self.split_idx1.shape[2]
            trees = np.arange(len(node))
            while (node < splits).any():
                active = node < splits
                t, n = trees[active], node[active]
                right_way = (
                    values[self.split_idx1[c, t, n]] - values[self.split_idx2[c, t, n]] > self.split_thresh[c, t, n]
                )
                node[active] = np.where(right_way, 2 * n + 1, 2 * n + 2)
            for leaf in self.leaf_values[c, trees, node - splits]:  # one tree at a time, as dlib adds them
                current += leaf
        return np.floor(origin + current.astype(np.float64) * size + 0.5).astype(np.int64)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x2 part of the least-squares similarity taking points `src` to `dst` (Umeyama,
    as dlib's find_similarity_transform computes it, in double)."""
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(a) < 2:
        return np.eye(2)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    sigma = ((a - ma) ** 2).sum(axis=1).mean()
    cov = (b - mb).T @ (a - ma) / len(a)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1
    scale = np.trace(np.diag(d) @ s) / sigma if sigma else 1.0
    return scale * (u @ s @ vt)
