"""Feeding the embed trainer: chips from the packed cache (or already in memory) as a torch
Dataset, identity-balanced P x K batches seeded per step, and a DataLoader whose worker
processes prepare the next batches while the current one trains."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bearid.preprocess import Normalisation, normalise
from bearid.settings import Settings
from bearid.training.embed.chipcache import ChipCache, open_cache


class CachedChips(Dataset):
    """Chips of a cache at the network's input size, as network inputs (3 x size x size
    float32, the serving normalisation). A batch is read in one go (`__getitems__`): one
    memory-mapped read and one normalisation, then (inputs, indices)."""

    def __init__(self, cache: ChipCache, labelled_only: bool = True, norm: Normalisation | None = None):
        self.cache, self.input_size, self.norm = cache, cache.size, norm or Normalisation()
        self.rows = np.array([i for i, label in enumerate(cache.labels) if label or not labelled_only], dtype=np.int64)
        self.labels = [cache.labels[i] for i in self.rows]
        self.paths = [cache.paths[i] for i in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, _ = self.__getitems__([i])
        return x[0], i

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(normalise(self.cache.batch(self.rows[idx]), self.norm)), torch.as_tensor(idx)


def _as_is(batch):
    """The collate step for batches a dataset already made whole."""
    return batch


class ChipsInMemory(Dataset):
    """The same inputs decoded once into one tensor: for small sets, and the baseline the
    loader is measured against."""

    def __init__(self, x: torch.Tensor, labels: list[str], paths: list[str], norm: Normalisation | None = None):
        self.x, self.labels, self.paths, self.norm = x, labels, paths, norm or Normalisation()

    @classmethod
    def of(cls, data: CachedChips) -> ChipsInMemory:
        x = (
            data.__getitems__(list(range(len(data))))[0]
            if len(data)
            else torch.zeros((0, 3, data.input_size, data.input_size))
        )
        return cls(x, data.labels, data.paths, data.norm)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], i

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(idx)
        return self.x[t], t


ChipData = CachedChips | ChipsInMemory


def open_chips(
    chips_xml: Path, input_size: int, labelled_only: bool = True, log=None, norm: Normalisation | None = None
) -> CachedChips:
    """The chips of a chips XML, through its cache at the network's input size (built if
    missing or stale), normalised as the network takes them (`norm`; default: BearID's)."""
    return CachedChips(open_cache(chips_xml, input_size, log), labelled_only, norm)


def pk_batch(members: list[np.ndarray], p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a batch: p identities, k chips each (drawn again where a bear has fewer);
    `members[c]` holds the indices of identity c's chips."""
    classes = len(members)
    ids = rng.choice(classes, size=p, replace=classes < p)
    out = []
    for c in ids:
        out.extend(rng.choice(members[c], size=k, replace=len(members[c]) < k))
    return np.array(out)


class PKBatches(Sampler):
    """Batches for steps `start` .. `steps`-1. Batch s is drawn from a generator seeded by
    (seed, rank, s), so a resumed run, or one with more or fewer loader workers, sees exactly
    the batches of an uninterrupted one."""

    def __init__(self, y: np.ndarray, p: int, k: int, seed: int, rank: int, start: int, steps: int):
        self.members = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]  # found once, not per step
        self.p, self.k, self.seed, self.rank, self.start, self.steps = p, k, seed, rank, start, steps

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start, self.steps):
            yield pk_batch(self.members, self.p, self.k, np.random.default_rng([self.seed, self.rank, s])).tolist()


def default_workers() -> int:
    """Loader processes: BEARID_LOADER_WORKERS, else half the CPUs this process may use (the
    other half runs the network), at least 1, at most 4; training on a GPU, all CPUs but one,
    at most 8 (the network no longer needs them, and the GPU waits for batches)."""
    from bearid.training.device import Device

    chosen = Settings.from_env().loader_workers
    if chosen is not None:
        return chosen
    cpus = len(os.sched_getaffinity(0))
    return max(1, min(8, cpus - 1)) if Device.choose().cuda else max(1, min(4, cpus // 2))


def batches(
    data: ChipData, sampler: Sampler, workers: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, indices) per batch of `sampler`. Data in memory is indexed directly; cached
    chips come through worker processes that keep two batches each ready ahead."""
    if isinstance(data, ChipsInMemory):
        for idx in sampler:
            t = torch.as_tensor(idx)
            yield data.x[t], t
        return
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        data,
        batch_sampler=sampler,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        collate_fn=_as_is,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


class Sequential(Sampler):
    """Every item once, in order, in batches of `size` (for embedding a whole split)."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return -(-self.n // self.size)

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, self.n, self.size):
            yield list(range(i, min(self.n, i + self.size)))
