"""Near-duplicate search over 64-bit perceptual hashes, sub-quadratic.

Bit-sampling LSH: each of `tables` tables keys every hash by `key_bits` randomly chosen bits;
two hashes at Hamming distance d share a key in one table with probability (1 - d/64)^k, so
with 32 tables of 14 bits a pair at distance 8 is missed about 0.5% of the time, while random
pairs (d ~ 32) meet about 2^-14 per table. Only pairs that share a key are compared.
"""

from __future__ import annotations

import numpy as np

MAX_BUCKET = 512  # members of a larger bucket are paired only with their 511 neighbours


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a.view(np.uint64), b.view(np.uint64))).astype(np.int64)


def near_pairs(
    hashes: np.ndarray, max_distance: int, tables: int = 32, key_bits: int = 14, seed: int = 0
) -> np.ndarray:
    """All pairs (i, j, distance), i < j, of hashes within `max_distance` (with high probability).

    `hashes` is an int64 (or uint64) array. Returns an (n, 3) int64 array, sorted.
    """
    h = np.ascontiguousarray(hashes).astype(np.int64).view(np.uint64)
    n = len(h)
    if n < 2:
        return np.zeros((0, 3), dtype=np.int64)
    rng = np.random.default_rng(seed)
    weights = np.uint64(1) << np.arange(key_bits, dtype=np.uint64)
    found: list[np.ndarray] = []
    for _ in range(tables):
        positions = rng.choice(64, size=key_bits, replace=False).astype(np.uint64)
        keys = (((h[:, None] >> positions[None, :]) & np.uint64(1)) * weights).sum(axis=1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        # Pair members of a bucket by their offset in key order, one vectorised pass per
        # offset; buckets larger than MAX_BUCKET are only paired up to that offset.
        pairs = []
        for offset in range(1, min(n, MAX_BUCKET)):
            idx = np.flatnonzero(sorted_keys[offset:] == sorted_keys[:-offset])
            if not len(idx):
                break
            pairs.append(np.column_stack([order[idx], order[idx + offset]]))
        if not pairs:
            continue
        cand = np.vstack(pairs)
        dist = hamming(h[cand[:, 0]].view(np.int64), h[cand[:, 1]].view(np.int64))
        keep = dist <= max_distance
        if keep.any():
            c = np.sort(cand[keep], axis=1)
            found.append(np.column_stack([c, dist[keep]]))
    if not found:
        return np.zeros((0, 3), dtype=np.int64)
    return np.unique(np.vstack(found).astype(np.int64), axis=0)


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components (union-find) of `n` items joined by `pairs`; label = smallest member."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i, j in pairs[:, :2] if len(pairs) else []:
        a, b = find(int(i)), find(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def near_clusters(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Cluster label per hash (the smallest index of its cluster; a lone hash is its own).

    Identical hashes are merged before the search, so a thousand copies of one frame cost
    one search entry, not half a million pairs.
    """
    h = np.ascontiguousarray(hashes).astype(np.int64)
    if len(h) == 0:
        return np.zeros(0, dtype=np.int64)
    unique, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    unique_labels = clusters(len(unique), near_pairs(unique, max_distance))
    # Name each cluster by the smallest original index among its members.
    representative = np.full(len(unique), len(h), dtype=np.int64)
    np.minimum.at(representative, unique_labels, first)
    return representative[unique_labels][inverse.ravel()]
