"""The embed stage at inference: what the embedding network is given, and what it gives back.

The network's input is the chip resized to its input size and normalised; its output, the
descriptor, is kept as it is (direction and length). The embedding is its direction; the
open-set score also reads its length. Embedding files are training's
(bearid.training.embed.embeddings).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bearid.preprocess import Normalisation, normalise


def input_pixels(chip: Image.Image, size: int) -> np.ndarray:
    """A chip resized to the embedding network's input (size x size x 3 uint8)."""
    img = chip if chip.size == (size, size) else chip.resize((size, size), Image.BILINEAR)
    return np.asarray(img.convert("RGB"))


def network_input(chip: Image.Image, size: int, norm: Normalisation | None = None) -> np.ndarray:
    """The embedding network's input for a chip (3 x size x size float32)."""
    return normalise(input_pixels(chip, size), norm)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (the embedding is the direction of the network's output)."""
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
