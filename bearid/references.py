"""Reference faces of a bear: its clearest faces in a faces XML (all landmarks first, then
the biggest, one per date before a second of the same date), so a person compares a new
face against the bear across seasons, and the picture of a face as the model sees it. The
match review and the bear book show them; whether a face is settled (`needs_match`) decides
which faces may serve as references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bearid.chip import ChipSpec, chip_faces
from bearid.data.layout import parse_contribution
from bearid.imageio import load_photo
from bearid.metadata import Box, Dataset


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def needs_match(box: Box, confident: float) -> str | None:
    """Why this face waits for a person, or None: no known bear, or named below `confident`
    (and no one has confirmed it since)."""
    if box.ignore:
        return None
    if not box.label or box.attrs.get("known") == "false":
        return "no known bear"
    confidence = _float(box.attrs.get("confidence"))
    if confidence is not None and confidence < confident and "matched_by" not in box.attrs:
        return f"named {box.label} at {confidence:.2f}"
    return None


@dataclass(frozen=True)
class Reference:
    image: int
    face: int
    date: str | None


def references(dataset: Dataset, bear_id: str, k: int = 3, parts: tuple[str, ...] = ()) -> list[Reference]:
    """Up to `k` faces of `bear_id` to compare against: those with all of `parts` first, then the
    biggest, one per date before a second from the same date."""
    faces = []
    for i, image in enumerate(dataset.images):
        date = _date_of(dataset.path_of(image))
        for n, box in enumerate(image.boxes):
            if box.label == bear_id and not box.ignore and needs_match(box, 0.0) is None:
                complete = all(p in box.parts for p in parts)
                faces.append((not complete, -box.width * box.height, i, n, date))
    faces.sort(key=lambda f: f[:4])
    chosen, dates = [], set()
    for _, _, i, n, date in faces:  # one per date first
        if date not in dates:
            chosen.append(Reference(i, n, date))
            dates.add(date)
    for _, _, i, n, date in faces:  # then fill
        if Reference(i, n, date) not in chosen:
            chosen.append(Reference(i, n, date))
    return chosen[:k]


def face_picture(path: Path, box: Box, spec: ChipSpec) -> Image.Image:
    """A face as the model sees it (its chip), or its box with a margin when the landmarks
    cannot make one: what the match review and the bear book show."""
    [chip] = chip_faces(path, [{k: (float(x), float(y)) for k, (x, y) in box.parts.items()}], spec)
    if chip.image is not None:
        return chip.image
    m = 0.15 * max(box.width, box.height)
    return load_photo(path).image.crop((box.left - m, box.top - m, box.right + m, box.bottom + m))


def _date_of(path: Path) -> str | None:
    for part in reversed(path.parts[:-1]):
        _, date = parse_contribution(part)
        if date:
            return date.isoformat()
    return None
