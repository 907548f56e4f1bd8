"""Made-up bears for embedding training: each bear's chips shown in another bear's fur
colour, trained as an identity of its own (identity augmentation).

With a few dozen bears, fur colour alone tells most of them apart, so a network trained only
on them learns little else, and a new bear with a known bear's colour passes for that bear. A
made-up bear has one bear's face and another's colour: to tell it from either, the network
has to look at the face itself (marks, eyes, ears, muzzle), which is also what tells a new
bear from a known one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from bearid.preprocess import Normalisation
from bearid.training.embed.loader import ChipData

# A made-up bear's colour differs from its own bear's by at least this factor in some
# channel; a closer one would be that bear again under another name.
CLEARLY_APART = 1.3


def _stats(norm: Normalisation) -> tuple:
    mean, std = norm.arrays()
    if isinstance(mean, float):
        return mean, std
    return torch.from_numpy(mean).view(-1, 1, 1), torch.from_numpy(std).view(-1, 1, 1)


def to_unit(x: torch.Tensor, norm: Normalisation) -> torch.Tensor:
    """Network inputs back to pixels in 0..1."""
    mean, std = _stats(norm)
    return x * std + mean


def from_unit(x: torch.Tensor, norm: Normalisation) -> torch.Tensor:
    mean, std = _stats(norm)
    return x.sub(mean).div(std)


def inputs(data: ChipData, idx: list[int]) -> torch.Tensor:
    """Network inputs of chips `idx` of a chip set (cached or in memory)."""
    return data.__getitems__(idx)[0]


def fur_colours(data: ChipData, y: np.ndarray, bears: int) -> np.ndarray:
    """Each bear's typical colour (bears x 3, 0..1): over its chips, the median of the
    median pixel of the chip's middle, where alignment puts the face (forehead, eyes, muzzle)."""
    middle = []
    for start in range(0, len(y), 1024):  # a batch at a time: a large training set need not fit at once
        x = to_unit(inputs(data, list(range(start, min(len(y), start + 1024)))), data.norm)
        s = x.shape[-1]
        middle.append(x[:, :, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4].flatten(2).median(dim=2).values.numpy())
    middle = np.concatenate(middle)
    return np.stack([np.median(middle[y == c], axis=0) for c in range(bears)])


def colour_gains(colours: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """copies x bears x 3 channel gains: copy r of bear c takes the colour of another bear,
    one clearly apart from c's (the farthest if none is), a different one per copy where
    there are enough."""
    rng = np.random.default_rng([seed, 7])
    logs = np.log(np.maximum(colours, 0.02))
    gains = np.ones((copies, len(colours), 3))
    for c in range(len(colours)):
        apart = np.abs(logs - logs[c]).max(axis=1)
        eligible = np.flatnonzero(apart >= np.log(CLEARLY_APART))
        if not len(eligible):
            eligible = np.array([int(np.argmax(apart))])
        for r, donor in enumerate(rng.choice(eligible, size=copies, replace=len(eligible) < copies)):
            gains[r, c] = np.exp(logs[donor] - logs[c])
    return gains


@dataclass
class MadeUpBears:
    """`copies` made-up bears per bear. Items (and identities) of the real chips come first,
    so with copies=0 nothing changes."""

    bear_of_chip: np.ndarray  # n: the real bear of each chip
    bears: int
    gains: torch.Tensor  # copies x bears x 3
    norm: Normalisation = field(default_factory=Normalisation)  # how the network's inputs are normalised

    @classmethod
    def of(cls, data: ChipData, bear_of_chip: np.ndarray, bears: int, copies: int, seed: int) -> MadeUpBears:
        gains = colour_gains(fur_colours(data, bear_of_chip, bears), copies, seed) if copies else np.ones((0, bears, 3))
        return cls(bear_of_chip, bears, torch.from_numpy(gains).float(), data.norm)

    @property
    def copies(self) -> int:
        return len(self.gains)

    @property
    def labels(self) -> np.ndarray:
        """The identity of every item: copy r of bear c is identity r * bears + c."""
        return np.concatenate([self.bear_of_chip + r * self.bears for r in range(self.copies + 1)])

    def dataset(self, data: ChipData) -> Dataset:
        """The chips and their made-up bears, items numbered as `labels`; `data` itself when
        there are none."""
        return WithMadeUp(data, self) if self.copies else data

    def recolour(self, x: torch.Tensor, copy: torch.Tensor, chip: torch.Tensor) -> torch.Tensor:
        """Network inputs `x` of chips `chip` as copy `copy` of their bear (0: the real one,
        as it is): the pixels scaled per channel, clipped to what a photo can hold."""
        bear = torch.from_numpy(self.bear_of_chip[chip.numpy()])
        made_up = copy > 0
        gain = self.gains[copy[made_up] - 1, bear[made_up]][:, :, None, None]
        x = x.clone()
        x[made_up] = from_unit((to_unit(x[made_up], self.norm) * gain).clamp(0, 1), self.norm)
        return x


class WithMadeUp(Dataset):
    """The chips copies + 1 times over: item i is chip i % n, as it is for i < n, else the
    made-up bear of copy i // n (made here, in the loader's workers)."""

    def __init__(self, data: ChipData, made_up: MadeUpBears):
        self.data, self.made_up, self.n = data, made_up, len(made_up.bear_of_chip)

    def __len__(self) -> int:
        return self.n * (self.made_up.copies + 1)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(idx)
        x = inputs(self.data, (t % self.n).tolist())
        return self.made_up.recolour(x, t // self.n, t % self.n), t
