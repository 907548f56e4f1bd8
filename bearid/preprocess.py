"""Pixels to network inputs: the one normaliser every network input goes through, in
training, evaluation and the service."""

from __future__ import annotations

import numpy as np

# BearID's own networks (the face detector, the refiner, the built-in embedding network)
# take pixels scaled to 0..1, less MEAN, over STD.
MEAN, STD = 0.5, 0.25


def normalise(pixels: np.ndarray, mean: float = MEAN, std: float = STD) -> np.ndarray:
    """Pixels (... x H x W x 3 uint8) as network inputs (... x 3 x H x W float32)."""
    return np.moveaxis((pixels.astype(np.float32) / 255.0 - mean) / std, -1, -3)
