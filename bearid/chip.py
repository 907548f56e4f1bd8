"""The chip stage: pose-normalise and crop a face chip from its landmarks.

A similarity transform (scale, rotation, translation; least squares over the chosen
landmarks) maps the face onto template positions in a square chip. This one function makes
every chip: in training, in evaluation and in the service, so a chip made from the same
photo and landmarks is bit-for-bit the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.imageio import Photo, displayed_size, load_photo

# Where the landmarks go in a chip, as fractions of the (unpadded) chip side. The bear's
# own left eye is on the image right, as in the photos.
DEFAULT_TEMPLATE = {
    "leye": (0.64, 0.40),
    "reye": (0.36, 0.40),
    "nose": (0.50, 0.74),
    "lear": (0.80, 0.08),
    "rear": (0.20, 0.08),
}


@dataclass(frozen=True)
class ChipSpec:
    size: int = 150
    points: tuple[str, ...] = ("leye", "reye", "nose")
    padding: float = 0.15  # extra margin on each side, as a fraction of the chip side
    template: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_TEMPLATE))
    min_eye_distance: float = 4.0  # px in the photo: smaller faces are not chipped

    def targets(self) -> np.ndarray:
        """Template points in chip pixels, for `points`."""
        p = self.padding
        return np.array(
            [
                (
                    (self.template[n][0] + p) / (1 + 2 * p) * self.size,
                    (self.template[n][1] + p) / (1 + 2 * p) * self.size,
                )
                for n in self.points
            ]
        )


@dataclass
class ChipResult:
    image: Image.Image | None
    matrix: np.ndarray | None  # 2x3: photo -> chip
    landmarks: dict[str, tuple[float, float]]  # in chip pixels
    problem: str | None = None  # why no chip was made


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) taking points `src` onto `dst`: a 2x3 matrix."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    a = (s * d).sum()  # sum of x*x' + y*y'
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()
    norm = (s**2).sum()
    if norm < 1e-9:
        raise ValueError("landmarks coincide")
    ca, sa = a / norm, b / norm  # scale*cos, scale*sin
    rot = np.array([[ca, -sa], [sa, ca]])
    return np.hstack([rot, (dst_mean - rot @ src_mean)[:, None]])


def make_chip(
    image: Image.Image, landmarks: dict[str, tuple[float, float]], spec: ChipSpec, scale: float = 1.0
) -> ChipResult:
    """Cut the chip of one face. `landmarks` are in displayed-photo pixels; `scale` is the
    size of `image` relative to the displayed photo (1.0: full resolution)."""
    missing = [n for n in spec.points if n not in landmarks]
    if missing:
        return ChipResult(None, None, {}, f"missing landmark(s): {', '.join(missing)}")
    src = np.array([landmarks[n] for n in spec.points], dtype=np.float64) * scale
    if (
        "leye" in landmarks
        and "reye" in landmarks
        and math.dist(landmarks["leye"], landmarks["reye"]) < spec.min_eye_distance
    ):
        return ChipResult(None, None, {}, f"face too small (eyes under {spec.min_eye_distance:g} px apart)")
    try:
        m = similarity(src, spec.targets())
    except ValueError as exc:
        return ChipResult(None, None, {}, str(exc))
    inverse = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # chip -> photo, as PIL wants it
    chip = image.transform((spec.size, spec.size), Image.AFFINE, data=tuple(inverse.ravel()), resample=Image.BICUBIC)
    out = {n: tuple(float(v) for v in m @ np.array([x * scale, y * scale, 1.0])) for n, (x, y) in landmarks.items()}
    return ChipResult(chip, m, out)  # type: ignore[arg-type]


def chip_scale(landmarks: dict[str, tuple[float, float]], spec: ChipSpec) -> float:
    """Chip pixels per displayed-photo pixel for this face: a photo decoded at this scale or
    finer holds every detail the chip can show."""
    try:
        m = similarity(np.array([landmarks[n] for n in spec.points], dtype=np.float64), spec.targets())
    except (KeyError, ValueError):
        return 0.0
    return float(math.hypot(m[0, 0], m[1, 0]))


def chip_faces(
    source: Path | str | bytes,
    faces: list[dict[str, tuple[float, float]]],
    spec: ChipSpec,
    decoded: Photo | None = None,
) -> list[ChipResult]:
    """Chips of several faces of one photo, decoded once at the resolution the chips need
    (draft-decoded for JPEG: a big face in a 12 MP photo needs a fraction of its pixels).
    `decoded` is reused when it is already fine enough. Training, evaluation and the service
    all cut chips here, so the same photo and landmarks give the same chip everywhere."""
    if not faces:
        return []
    need = min(1.0, max(chip_scale(f, spec) for f in faces))
    if decoded is None or decoded.scale < need:
        width, height = (decoded.width, decoded.height) if decoded else displayed_size(source)
        side = max(width, height)
        decoded = load_photo(source, max_side=None if need >= 1.0 else max(1, math.ceil(side * need)))
    return [make_chip(decoded.image, f, spec, decoded.scale) for f in faces]
