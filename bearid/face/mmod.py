"""dlib's MMOD face detector at inference (NumPy around any runtime): an imported bearface.

The network sees the photo as one tiled image pyramid: the photo, then copies each 5/6 the
size of the one before, packed in two columns with padding (dlib's input_rgb_image_pyramid
of pyramid_down<6>, dlib/dnn/input.h). Every output position of every detector window is a
candidate face of that window's size, centred where the position maps to in the tiled
image, then mapped back to the photo through the copy it falls in. Candidates scoring above
the threshold are kept best first, dropping any that overlap a kept one (dlib's
test_box_overlap). Arithmetic follows dlib's, so boxes and scores are dlib's (checked
against dlib itself in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bearid.face.detection import Detection
from bearid.face.finder import Network
from bearid.face.shape_predictor import ShapeModel
from bearid.imageio import Photo

Rect = tuple[int, int, int, int]  # left, top, right, bottom (inclusive), as dlib's rectangle


@dataclass(frozen=True)
class MmodSpec:
    windows: tuple[tuple[int, int], ...]  # (width, height) of each detector window: one output channel each
    mean: tuple[float, float, float]  # RGB subtracted, then divided by 256 (dlib's input layer)
    output_to_input: tuple[float, float]  # (a, b): output position p is tiled-image position a*p + b
    padding: int = 10  # between pyramid levels
    outer_padding: int = 11  # around the tiled image
    nms_iou: float = 0.5
    nms_covered: float = 1.0
    threshold: float = 0.0  # a face scores above it
    max_pixels: int = 2000 * 1500  # larger photos are shrunk first (as bearface does)
    pyramid_down: int = 6  # each level is (N-1)/N the size of the one before


# -- the tiled pyramid -----------------------------------------------------------------------
def pyramid_layout(rows: int, cols: int, spec: MmodSpec) -> tuple[list[Rect], int, int]:
    """Where each pyramid level of a rows x cols image goes in the tiled image, and the
    tiled image's size (dlib's compute_tiled_image_pyramid_details)."""
    n = spec.pyramid_down
    sizes = [(cols, rows)]
    r, c = rows, cols
    while True:
        r, c = int(math.floor((n - 1) / n * r)), int(math.floor((n - 1) / n * c))
        if r * c == 0 or r < 5:
            break
        sizes.append((c, r))
    pad, outer = spec.padding, spec.outer_padding
    w0, h0 = sizes[0]
    total_height = sum(h + pad for _, h in sizes) - 2 * pad
    wrap = 1 << 64  # dlib compares these as unsigned longs: a negative right side never holds back

    def at_least(a: int, b: int) -> bool:
        return a % wrap >= b % wrap

    height = prev_width = 0
    for w, h in sizes:
        if at_least(w0 - prev_width - pad, w) and at_least((height - h0) * 2, total_height - h0):
            break
        height += h + pad
        prev_width = w
    height -= pad
    width = w0
    rects: list[Rect] = []
    y, i = outer, 0
    while y < height + outer and i < len(sizes):
        w, h = sizes[i]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + pad
        i += 1
    y -= pad
    first = rects[0]
    for w, h in sizes[i:]:
        right, bottom = outer + width - 1, y - 1
        rect = (right - w + 1, bottom - h + 1, right, bottom)
        if _intersects(rect, first):
            break
        rects.append(rect)
        y -= h + pad
    return rects, height + 2 * outer, width + 2 * outer


def _intersects(a: Rect, b: Rect) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def resize_bilinear(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A C x H x W float image resized with corners aligned (dlib's resize_image)."""
    _, h, w = src.shape
    ys = np.arange(rows) * ((h - 1) / max(rows - 1, 1))
    xs = np.arange(cols) * ((w - 1) / max(cols - 1, 1))
    top, left = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    bottom, right = np.minimum(top + 1, h - 1), np.minimum(left + 1, w - 1)
    ty, tx = (ys - top)[:, None].astype(np.float32), (xs - left)[None, :].astype(np.float32)
    tl, tr = src[:, top][:, :, left], src[:, top][:, :, right]
    bl, br = src[:, bottom][:, :, left], src[:, bottom][:, :, right]
    return ((1 - ty) * ((1 - tx) * tl + tx * tr) + ty * ((1 - tx) * bl + tx * br)).astype(np.float32)


def network_input(image: np.ndarray, spec: MmodSpec) -> tuple[np.ndarray, list[Rect]]:
    """The network's input (1 x 3 x R x C) for an H x W x 3 uint8 RGB image, and where each
    pyramid level sits in it."""
    rows, cols = image.shape[:2]
    rects, tiled_rows, tiled_cols = pyramid_layout(rows, cols, spec)
    out = np.zeros((3, tiled_rows, tiled_cols), np.float32)
    level = (image.astype(np.float32) - np.array(spec.mean, np.float32)) / np.float32(256.0)
    level = np.ascontiguousarray(level.transpose(2, 0, 1))
    for i, (left, top, right, bottom) in enumerate(rects):
        if i:
            level = resize_bilinear(level, bottom - top + 1, right - left + 1)
        out[:, top : bottom + 1, left : right + 1] = level
    return out[None], rects


# -- from scores to faces ------------------------------------------------------------------------
def _round(v: float) -> int:
    return int(math.floor(v + 0.5))


def _to_image(rect: tuple[float, float, float, float], rects: list[Rect], spec: MmodSpec) -> tuple[float, ...]:
    """A rectangle of the tiled image in the photo (dlib's tiled_pyramid_to_image)."""
    cx, cy = _round((rect[0] + rect[2]) / 2), _round((rect[1] + rect[3]) / 2)
    level = next((i for i, r in enumerate(rects) if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]), None)
    if level is None:

        def distance(r: Rect) -> float:
            return math.hypot(min(max(cx, r[0]), r[2]) - cx, min(max(cy, r[1]), r[3]) - cy)

        level = min(range(len(rects)), key=lambda i: distance(rects[i]))
    x0, y0 = rects[level][0], rects[level][1]
    up = spec.pyramid_down / (spec.pyramid_down - 1.0)
    out = [rect[0] - x0, rect[1] - y0, rect[2] - x0, rect[3] - y0]
    for _ in range(level):
        out = [v * up + 0.3 for v in out]
    return tuple(out)


def image_to_tiled(
    rect: tuple[float, float, float, float], scale: float, rects: list[Rect], spec: MmodSpec
) -> tuple[float, ...]:
    """A rectangle of the photo in the tiled image, at the level nearest to `scale` times its
    size (dlib's image_to_tiled_pyramid; 0 < scale <= 1): what training maps truth boxes by,
    the inverse of `_to_image`."""
    down = (spec.pyramid_down - 1.0) / spec.pyramid_down
    level = min(max(int(math.floor(math.log(scale) / math.log(down) + 0.5)), 0), len(rects) - 1)
    out = list(rect)
    for _ in range(level):
        out = [(v - 0.3) * down for v in out]
    x0, y0 = rects[level][0], rects[level][1]
    return (out[0] + x0, out[1] + y0, out[2] + x0, out[3] + y0)


def _area(r: Rect) -> int:
    return max(0, r[2] - r[0] + 1) * max(0, r[3] - r[1] + 1)


def overlapping(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's test_box_overlap: the intersection over the box around both (not the union),
    or over either box."""
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return inner / outer > iou or inner / _area(a) > covered or inner / _area(b) > covered


def decode(
    scores: np.ndarray, rects: list[Rect], spec: MmodSpec, threshold: float | None = None
) -> list[tuple[Rect, float]]:
    """Faces (dlib rectangles in the image the pyramid was made of) and their scores, best
    first, from the network's output (K x h x w, one channel per detector window)."""
    threshold = spec.threshold if threshold is None else threshold
    a, b = spec.output_to_input
    found = []
    for k, r, c in zip(*np.nonzero(scores > threshold)):
        w, h = spec.windows[k]
        px, py = a * c + b, a * r + b
        tensor_rect = (px - (w - 1) / 2, py - (h - 1) / 2, px + (w - 1) / 2, py + (h - 1) / 2)
        found.append((tuple(_round(v) for v in _to_image(tensor_rect, rects, spec)), float(scores[k, r, c])))
    found.sort(key=lambda f: -f[1])
    kept: list[tuple[Rect, float]] = []
    for rect, score in found:
        if not any(overlapping(k, rect, spec.nms_iou, spec.nms_covered) for k, _ in kept):
            kept.append((rect, score))  # type: ignore[arg-type]
    return kept


class MmodFinder:
    """Faces and landmarks of a photo: the MMOD network (any runtime) for the boxes, the shape
    predictor (NumPy) for the landmarks, both on the photo as decoded (shrunk to at most
    `spec.max_pixels`), then scaled to the photo's displayed pixels."""

    def __init__(self, detect: Network, shapes: ShapeModel | None, spec: MmodSpec, parts: tuple[str, ...]):
        """`shapes` None: boxes without landmarks (what measuring a detector's AP needs)."""
        if shapes is not None and len(parts) != shapes.parts:
            raise ValueError(f"{len(parts)} landmark names for a shape model of {shapes.parts} parts")
        self.detect, self.shapes, self.spec, self.parts = detect, shapes, spec, parts

    def find(self, photo: Photo, threshold: float | None = None) -> list[Detection]:
        image = photo.image
        k = 1.0
        if image.width * image.height > self.spec.max_pixels:
            k = math.sqrt(self.spec.max_pixels / (image.width * image.height))
            image = image.resize((int(image.width * k), int(image.height * k)))
        pixels = np.asarray(image.convert("RGB"))
        x, rects = network_input(pixels, self.spec)
        scale = photo.scale * image.width / photo.image.width  # pixels per displayed pixel
        out = []
        for (left, top, right, bottom), score in decode(self.detect(x)[0], rects, self.spec, threshold):
            points = [] if self.shapes is None else self.shapes.predict(pixels, (left, top, right, bottom))
            marks = {name: (float(px) / scale, float(py) / scale) for name, (px, py) in zip(self.parts, points)}
            out.append(Detection(left / scale, top / scale, (right - left + 1) / scale, (bottom - top + 1) / scale,
                                 score, marks))  # fmt: skip
        return out


def output_to_input(layers: list[tuple[int, int, int]]) -> tuple[float, float]:
    """(a, b) such that output position p maps to input position a*p + b, from the (stride,
    padding, size) of each convolution or pool, input first (dlib's map_output_to_input:
    p*stride - padding + size//2 per layer, outermost first)."""

    def back(p: float) -> float:
        for stride, padding, size in reversed(layers):
            p = p * stride - padding + size // 2
        return p

    b = back(0.0)
    return back(1.0) - b, b
