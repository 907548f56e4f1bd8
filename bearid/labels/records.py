"""The record every format is read into and written from: photos by relative path, each with
its faces (a box, the five named landmarks, the bear ID, ignore, cub, the other attributes).

imglab XML is BearID's truth; the formats of other tools are ways to carry it there and back.
One record model between them keeps each format's module to its own mapping, and lets one
round trip (imglab -> record -> format -> record -> imglab) be checked for all of them. What a
format cannot hold is counted in `Dropped` and said, never lost without a word.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bearid.errors import BearIDError
from bearid.metadata import LANDMARKS, Box, Dataset
from bearid.metadata.faces import BOX_FLAGS

FACE = "bear_face"  # the one object class every format names
SKELETON: tuple[str, ...] = LANDMARKS  # leye, reye, nose, lear, rear: the order in every format
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 4))  # eyes, eyes-nose, eye-ear
PART_ATTR = "part."  # a part outside the skeleton (head_top) rides as the attribute "part.NAME" = "x y"
# Box attributes every format carries by name (besides the free-form ones).
FLAGS: tuple[str, ...] = ("ignore", "cub", "difficult", "truncated", "occluded")


class LabelsError(BearIDError):
    """A labels file that cannot be read as its format, or a request that cannot be carried out."""


@dataclass
class FaceRecord:
    """One face as every format sees it. Coordinates are pixels of the upright photo."""

    left: float
    top: float
    width: float
    height: float
    bear_id: str | None = None
    points: dict[str, tuple[float, float]] = field(default_factory=dict)  # skeleton names only
    ignore: bool = False
    cub: bool = False
    difficult: bool = False
    truncated: bool = False
    occluded: bool = False
    attrs: dict[str, str] = field(default_factory=dict)  # candidates, matched_by, detection_score, part.*, ...


@dataclass
class PhotoRecord:
    """One photo: `file` relative to the root the export was made from (forward slashes)."""

    file: str
    width: int
    height: int
    faces: list[FaceRecord] = field(default_factory=list)
    base: str | None = None  # the hash of the photo's boxes when exported: what an import checks


@dataclass
class LabelSet:
    photos: list[PhotoRecord] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # what could not be carried -> how many times

    def drop(self, what: str, n: int = 1) -> None:
        self.dropped[what] += n


def boxes_hash(boxes: list[Box]) -> str:
    """A short hash of a photo's boxes as the label store sees them: an import compares the
    hash an export recorded with the XML's now, so a newer edit is never written over."""
    from bearid.label.boxes import box_to_json

    text = json.dumps([box_to_json(b) for b in boxes], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_cub_folder(file: str) -> bool:
    """A photo in a cub folder (`bf_051_cub/`), as the archive files cubs."""
    parent = Path(file).parent.name.lower()
    return parent.endswith("_cub")


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


def face_of(box: Box, file: str) -> FaceRecord:
    attrs = dict(box.attrs)
    cub = _truthy(attrs.pop("cub")) if "cub" in attrs else is_cub_folder(file)
    points = {name: (float(x), float(y)) for name, (x, y) in box.parts.items() if name in SKELETON}
    for name, (x, y) in sorted(box.parts.items()):
        if name not in SKELETON:
            attrs[PART_ATTR + name] = f"{x} {y}"
    return FaceRecord(
        box.left,
        box.top,
        box.width,
        box.height,
        box.label,
        points,
        ignore=box.ignore,
        cub=cub,
        difficult=box.difficult,
        truncated=box.truncated,
        occluded=box.occluded,
        attrs=attrs,
    )


def box_of(face: FaceRecord, file: str, dropped: Counter | None = None) -> Box:
    """The imglab box of a face; coordinates rounded to whole pixels (counted in `dropped`)."""
    values = [face.left, face.top, face.width, face.height]
    parts: dict[str, tuple[int, int]] = {}
    for x, y in face.points.values():
        values += [x, y]
    if dropped is not None:
        off = sum(1 for v in values if abs(v - round(v)) > 1e-6)
        if off:
            dropped["coordinates rounded to whole pixels (imglab holds integers)"] += off
    for name, (x, y) in face.points.items():
        parts[name] = (round(x), round(y))
    attrs = {}
    for key, value in face.attrs.items():
        if key.startswith(PART_ATTR):
            try:
                x, y = (int(round(float(v))) for v in value.split())
            except ValueError:
                raise LabelsError(f"{file}: attribute {key}={value!r} is not 'x y'") from None
            parts[key[len(PART_ATTR) :]] = (x, y)
        elif key != "cub":
            attrs[key] = value
    if face.cub != is_cub_folder(file):
        attrs["cub"] = "1" if face.cub else "0"
    left, top, width, height = (round(v) for v in (face.left, face.top, face.width, face.height))
    flags = {flag: bool(getattr(face, flag)) for flag in BOX_FLAGS}
    return Box(left, top, width, height, face.bear_id or None, parts, attrs=attrs, **flags)


def photo_size(dataset: Dataset, index: int) -> tuple[int, int]:
    """(width, height) of a photo: the XML's, else its header's (EXIF applied, as the XML's
    coordinates are). Formats that store relative coordinates need it."""
    image = dataset.images[index]
    if image.width and image.height:
        return image.width, image.height
    from bearid.imageio import displayed_size

    path = dataset.path_of(image)
    try:
        return displayed_size(path)
    except (OSError, ValueError, BearIDError) as exc:
        raise LabelsError(f"{path}: its size is needed (the XML has none) and it cannot be read: {exc}") from None


def relative_to(path: Path, root: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def from_dataset(dataset: Dataset, root: Path) -> LabelSet:
    """Every photo of `dataset`, named relative to `root`, with the hash of its boxes."""
    photos = []
    for i, image in enumerate(dataset.images):
        file = relative_to(dataset.path_of(image), root)
        width, height = photo_size(dataset, i)
        faces = [face_of(b, file) for b in image.boxes]
        photos.append(PhotoRecord(file, width, height, faces, base=boxes_hash(image.boxes)))
    return LabelSet(photos)


def finite(value: object, what: str) -> float:
    """A number from a labels file, else a LabelsError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LabelsError(f"{what} must be a number, got {value!r}")
    return float(value)


def as_flag(value: object, what: str) -> bool:
    """A flag as a labels file writes it: true/false, 1/0, "1"/"0", "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return _truthy(value)
    raise LabelsError(f"{what} must be true or false, got {value!r}")


def text_attrs(items: dict, what: str) -> dict[str, str]:
    """Free-form attributes as text (numbers and booleans written as imglab would hold them)."""
    out = {}
    for key, value in items.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        if not isinstance(value, (str, int, float)):
            raise LabelsError(f"{what}: attribute {key!r} is {type(value).__name__}, not text")
        out[str(key)] = str(value)
    return out
