"""Pixels to network inputs: the one normaliser every network input goes through, in
training, evaluation and the service. A network's normalisation (mean and deviation per
channel, in units of the full 0..1 pixel range) travels with it in the bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# BearID's own networks (the face detector, the refiner, the built-in embedding network)
# take pixels scaled to 0..1, less MEAN, over STD.
MEAN, STD = 0.5, 0.25


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, ...] = (MEAN,)  # one value for every channel, or one per channel (RGB)
    std: tuple[float, ...] = (STD,)

    @classmethod
    def of(cls, record: dict | None) -> Normalisation:
        """From a bundle manifest's record (none: BearID's own)."""
        return cls(tuple(record["mean"]), tuple(record["std"])) if record else cls()

    def record(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    def arrays(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Mean and deviation to broadcast over ... x H x W x 3 pixels (plain numbers when one
        value serves every channel, so BearID's own inputs are computed as they always were)."""
        if len(self.mean) == 1 and len(self.std) == 1:
            return self.mean[0], self.std[0]
        return np.array(self.mean, np.float32), np.array(self.std, np.float32)


def normalise(pixels: np.ndarray, norm: Normalisation | None = None) -> np.ndarray:
    """Pixels (... x H x W x 3 uint8) as network inputs (... x 3 x H x W float32)."""
    mean, std = (norm or Normalisation()).arrays()
    return np.moveaxis((pixels.astype(np.float32) / 255.0 - mean) / std, -1, -3)


def dlib_normalisation(mean_rgb: tuple[float, float, float]) -> Normalisation:
    """dlib's input layers: the mean pixel subtracted, then divided by 256."""
    return Normalisation(tuple(m / 255.0 for m in mean_rgb), (256.0 / 255.0,) * 3)
