"""The layouts a face model file of the original tools comes in, read in one place:

- a network alone (dlib's `mmod_human_face_detector.dat`);
- a network then its shape predictor (`serialize(file) << net << sp`), as a `bearface_network.dat`
  saved without the images comes;
- the dog hipsterizer's `mmod_dog_hipsterizer.dat` (dlib's dnn_mmod_dog_hipsterizer.cpp, the
  file the original BearID started from): `net >> sp >> glasses >> mustache`, the two images
  being `matrix<rgb_alpha_pixel>` that BearID skips. bearface.cpp reads and writes its own
  model in this layout too (its images empty where it has none).

dlib writes consecutive objects one after the other, with no header between them, so the
layout is told by what follows the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bearid.dlibformat.network import Network, read_network
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.shape_predictor import read_shape_predictor
from bearid.face.shape_predictor import ShapeModel

Layout = Literal["network", "bearface", "hipsterizer"]


@dataclass
class FaceFile:
    network: Network
    shapes: ShapeModel | None  # None: the file holds the network alone
    layout: Layout
    images: list[tuple[int, int]]  # the skipped images' (rows, columns)


def skip_rgba_image(r: Reader, what: str) -> tuple[int, int]:
    """A dlib matrix<rgb_alpha_pixel> (minus rows, minus columns, then 4 bytes a pixel), skipped."""
    at = r.pos
    rows, cols = r.integer(f"the rows of {what}"), r.integer(f"the columns of {what}")
    if rows > 0 or cols > 0:
        raise r.fail(f"{what}: not a dlib matrix ({rows} x {cols})", at)
    r.take(4 * rows * cols, f"{what}'s {-rows} x {-cols} pixels")
    return -rows, -cols


def read_face_file(path: Path) -> FaceFile:
    """The network, and the shape predictor and images where the file holds them."""
    r = Reader.open(path)
    net = read_network(r)
    if not r.left:
        return FaceFile(net, None, "network", [])
    shapes = read_shape_predictor(r).check()
    if not r.left:
        return FaceFile(net, shapes, "bearface", [])
    return FaceFile(net, shapes, "hipsterizer", skip_hipsterizer_images(r))


def skip_hipsterizer_images(r: Reader) -> list[tuple[int, int]]:
    """After a shape predictor: the hipsterizer's glasses and mustache, skipped to the file's
    end (anything else there is refused, naming the byte)."""
    at = r.pos
    try:
        images = [skip_rgba_image(r, "the glasses"), skip_rgba_image(r, "the mustache")]
    except DlibFormatError as exc:
        raise r.fail(f"after the shape predictor, {len(r.data) - at} bytes that are not the hipsterizer's "
                     f"two images ({exc})", at) from None  # fmt: skip
    if r.left:
        raise r.fail(f"{r.left} bytes after the network, the shape predictor and two images")
    return images
