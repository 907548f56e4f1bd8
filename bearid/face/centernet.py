"""The CenterNet face detector's geometry, shared by training, evaluation and the service
(NumPy only).

The detector (a CenterNet-style network, any runtime) sees the photo shrunk so its long side
is one of `input_sides` (an image pyramid: fine for small faces, coarse for faces that fill
the frame), padded to a multiple of 32, normalised. It returns one map of 15 channels at
stride 4: face-centre heat (after sigmoid), log box size, centre offset, and the five
landmarks relative to the centre. A second small network refines the box and the landmarks
on a crop of each face taken from a larger image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from bearid.face.detection import Detection
from bearid.metadata.faces import LANDMARKS
from bearid.preprocess import normalise

STRIDE = 4
SIZE_UNIT = 16.0  # the size channels predict log(side / SIZE_UNIT)
CHANNELS = 5 + 2 * len(LANDMARKS)  # heat, log w, log h, dx, dy, 5 x (lx, ly)
REFINER_OUTPUTS = 2 * len(LANDMARKS) + 4  # landmarks, then the box (left, top, right, bottom)


@dataclass(frozen=True)
class DetectorSpec:
    input_sides: tuple[int, ...] = (768, 256)  # pyramid, finest first
    max_face_input: float = 150.0  # a pass keeps faces up to this side (input px); the coarsest keeps all
    score_threshold: float = 0.35
    nms_iou: float = 0.4
    max_faces: int = 32
    crop_size: int = 64  # refiner input
    crop_expand: float = 1.3  # refiner crop side / face box side


def input_geometry(width: int, height: int, side: int) -> tuple[float, int, int]:
    """(scale, padded width, padded height) of the detector input for a displayed photo."""
    k = side / max(width, height)
    w, h = round(width * k), round(height * k)
    return k, -(-w // 32) * 32, -(-h // 32) * 32


def detector_input(image: Image.Image, width: int, height: int, side: int) -> tuple[np.ndarray, float]:
    """The network input (1x3xHxW) at pyramid level `side` for an upright image of a photo
    displayed at width x height, and the scale from displayed pixels to input pixels."""
    k, pw, ph = input_geometry(width, height, side)
    w, h = round(width * k), round(height * k)
    small = image if image.size == (w, h) else image.resize((w, h), Image.BILINEAR)
    canvas = np.zeros((ph, pw, 3), dtype=np.uint8)
    canvas[:h, :w] = np.asarray(small)
    return normalise(canvas)[None], k


def _peaks(heat: np.ndarray) -> np.ndarray:
    """Mask of 3x3 local maxima."""
    padded = np.pad(heat, 1, constant_values=-np.inf)
    neighbours = np.stack(
        [padded[dy : dy + heat.shape[0], dx : dx + heat.shape[1]] for dy in range(3) for dx in range(3)]
    )
    return heat >= neighbours.max(axis=0)


def decode(
    output: np.ndarray, scale: float, spec: DetectorSpec, threshold: float | None = None, max_side: float | None = None
) -> list[Detection]:
    """Turn one detector output (15 x h x w) into faces in displayed-photo pixels (before
    suppression); with `max_side`, only faces up to that side in input pixels."""
    threshold = spec.score_threshold if threshold is None else threshold
    heat = output[0]
    ys, xs = np.nonzero(_peaks(heat) & (heat >= threshold))
    order = np.argsort(-heat[ys, xs])[: spec.max_faces * 4]
    found: list[Detection] = []
    for y, x in zip(ys[order], xs[order]):
        v = output[:, y, x]
        w, h = SIZE_UNIT * np.exp(v[1]), SIZE_UNIT * np.exp(v[2])
        if max_side is not None and max(w, h) > max_side:
            continue
        cx, cy = (x + v[3]) * STRIDE, (y + v[4]) * STRIDE
        marks = {
            name: ((cx + v[5 + 2 * i] * w) / scale, (cy + v[6 + 2 * i] * h) / scale) for i, name in enumerate(LANDMARKS)
        }
        found.append(
            Detection((cx - w / 2) / scale, (cy - h / 2) / scale, w / scale, h / scale, float(heat[y, x]), marks)
        )
    return found


def crop_box(box: tuple[float, float, float, float], expand: float) -> tuple[float, float, float]:
    """(left, top, side) of the square refiner crop around a face box."""
    left, top, w, h = box
    side = max(w, h) * expand
    return left + w / 2 - side / 2, top + h / 2 - side / 2, side


def refiner_input(
    image: Image.Image, scale: float, box: tuple[float, float, float, float], spec: DetectorSpec
) -> np.ndarray:
    """The refiner's input (3 x crop x crop) for a face box given in displayed pixels;
    `image` is the upright photo at `scale` times the displayed size."""
    left, top, side = crop_box(box, spec.crop_expand)
    region = (left * scale, top * scale, (left + side) * scale, (top + side) * scale)
    crop = image.transform((spec.crop_size, spec.crop_size), Image.EXTENT, data=region, resample=Image.BILINEAR)
    return normalise(np.asarray(crop))


def refine(det: Detection, pred: np.ndarray, spec: DetectorSpec) -> Detection:
    """Apply a refiner output (fractions of the crop: 5 landmarks, then left, top, right,
    bottom) to a detection: box and landmarks in displayed pixels."""
    left, top, side = crop_box(det.box, spec.crop_expand)
    marks = {
        name: (float(left + pred[2 * i] * side), float(top + pred[2 * i + 1] * side))
        for i, name in enumerate(LANDMARKS)
    }
    b = pred[2 * len(LANDMARKS) :]
    x0, y0, x1, y1 = left + b[0] * side, top + b[1] * side, left + b[2] * side, top + b[3] * side
    return Detection(float(x0), float(y0), float(max(x1 - x0, 1.0)), float(max(y1 - y0, 1.0)), det.score, marks)
