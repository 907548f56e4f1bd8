"""Training data from imglab XML: photos decoded upright, shrunk once and kept in memory."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.data.layout import photos_under
from bearid.imageio import load_photo
from bearid.metadata import LANDMARKS, Dataset, read_faces


@dataclass
class Face:
    box: tuple[float, float, float, float]  # left, top, width, height (displayed pixels)
    landmarks: np.ndarray | None  # 5x2 in LANDMARKS order, or None if incomplete
    label: str | None
    ignore: bool = False


@dataclass
class Sample:
    path: Path
    file: str  # as written in the XML
    width: int  # displayed size
    height: int
    faces: list[Face]


def samples(dataset: Dataset) -> list[Sample]:
    out = []
    for image in dataset.images:
        faces = []
        for b in image.boxes:
            marks = (
                np.array([b.parts[n] for n in LANDMARKS], dtype=np.float32)
                if all(n in b.parts for n in LANDMARKS)
                else None
            )
            faces.append(Face((b.left, b.top, b.width, b.height), marks, b.label, b.ignore))
        out.append(Sample(dataset.path_of(image), image.file, image.width or 0, image.height or 0, faces))
    return out


def read_samples(path: Path) -> list[Sample]:
    return samples(read_faces(path))


@dataclass
class Loaded:
    """A photo kept in memory at `scale` times its displayed size."""

    sample: Sample
    image: Image.Image
    scale: float


def load_all(items: list[Sample], max_side: int, threads: int = 2) -> list[Loaded]:
    """Decode every photo (draft mode) to at most `max_side`, in parallel."""

    def one(s: Sample) -> Loaded:
        photo = load_photo(s.path, max_side=max_side)
        if not s.width:
            s.width, s.height = photo.width, photo.height
        return Loaded(s, photo.image, photo.scale)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, items))


def photo_samples(paths: list[Path]) -> list[Sample]:
    """Photos named directly, found in folders (hidden ones left out), or listed in an imglab
    XML (no faces)."""
    out: list[Sample] = []
    for path in paths:
        path = Path(path)
        if path.suffix.lower() == ".xml":
            out += [Sample(s.path, s.file, s.width, s.height, []) for s in read_samples(path)]
        elif path.is_dir():
            out += [Sample(p, str(p), 0, 0, []) for p in photos_under(path)]
        else:
            out.append(Sample(path, str(path), 0, 0, []))
    return out
