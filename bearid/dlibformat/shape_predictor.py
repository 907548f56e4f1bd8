"""dlib's shape predictor file (dlib/image_processing/shape_predictor.h): a cascade of
regression-tree forests, read into arrays (`bearid.face.shape_predictor` runs them).

    int 1, initial shape (matrix), forests [cascade][tree], anchor indices [cascade][pixel],
    deltas [cascade][pixel] (x, y)

A tree is its splits (feature pixel indices idx1, idx2 and a threshold, in breadth-first
order) and one shape offset per leaf.
"""

from __future__ import annotations

import numpy as np

from bearid.dlibformat.reader import Reader
from bearid.face.shape_predictor import ShapeModel


def read_shape_predictor(r: Reader) -> ShapeModel:
    r.version((1,), "the shape predictor (is this a dlib shape predictor file?)")
    initial = r.matrix("the initial shape").ravel()
    if initial.size < 2 or initial.size % 2:
        raise r.fail(f"a shape predictor whose initial shape has {initial.size} values")
    cascades = r.count("cascades", each=2)
    idx1, idx2, thresh, leaves = [], [], [], []
    for c in range(cascades):
        trees = r.count("trees", each=2)
        for _ in range(trees):
            n_splits = r.count("splits", each=3)
            split = np.empty((n_splits, 3))
            for s in range(n_splits):
                split[s] = (r.uint("a feature index"), r.uint("a feature index"), r.number("a split threshold"))
            n_leaves = r.count("leaves", each=2)
            if n_leaves != n_splits + 1:
                raise r.fail(f"a tree with {n_splits} splits and {n_leaves} leaves (not a complete binary tree)")
            leaf = np.stack([r.matrix("a leaf").ravel() for _ in range(n_leaves)])
            if leaf.shape[1] != initial.size:
                raise r.fail(f"a leaf of {leaf.shape[1]} values for a shape of {initial.size}")
            idx1.append(split[:, 0])
            idx2.append(split[:, 1])
            thresh.append(split[:, 2])
            leaves.append(leaf)
        if trees == 0 or (c and trees * (c + 1) != len(leaves)):
            raise r.fail("cascades of different sizes (BearID reads dlib's, which are all alike)")
    shape_of = {a.shape for a in leaves}
    if len(shape_of) != 1:
        raise r.fail("trees of different depths (BearID reads dlib's, which are all alike)")
    anchors = [
        np.array([r.uint("an anchor") for _ in range(r.count("anchors"))]) for _ in range(r.count("anchor lists"))
    ]
    deltas = []
    for _ in range(r.count("delta lists")):
        n = r.count("deltas", each=4)
        deltas.append(r.numbers(2 * n, "the feature offsets").reshape(n, 2))
    if len(anchors) != cascades or len(deltas) != cascades or {len(a) for a in anchors} != {len(d) for d in deltas}:
        raise r.fail("anchor indices and offsets that do not match the cascades")
    trees = len(leaves) // cascades

    def per_cascade(items: list[np.ndarray], dtype) -> np.ndarray:
        return np.stack(items).astype(dtype).reshape(cascades, trees, *items[0].shape)

    return ShapeModel(
        initial_shape=initial.reshape(-1, 2).astype(np.float32),
        split_idx1=per_cascade(idx1, np.int32),
        split_idx2=per_cascade(idx2, np.int32),
        split_thresh=per_cascade(thresh, np.float32),
        leaf_values=per_cascade(leaves, np.float32).reshape(cascades, trees, len(leaves[0]), -1, 2),
        anchor_idx=np.stack(anchors).astype(np.int32),
        deltas=np.stack(deltas).astype(np.float32),
    )
