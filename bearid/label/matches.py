"""The match review's material: which faces wait for a person to say who they are, the bears
each could be (the model's candidates, best first), and reference chips of every candidate.

Candidates come from the XML itself when `bearid score` wrote it (each box carries its
`candidates`), or from a bundle run in this process (the champion; `ModelCandidates`).
References are a bear's clearest faces in the XML: the biggest with all their landmarks,
one per date first, so the person compares against the bear across seasons.
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

CANDIDATES = "candidates"  # the box attribute `bearid score` writes: "bf_051:0.6100 bf_022:0.2000"


def encode(candidates: list[dict]) -> str:
    return " ".join(f"{c['bear_id']}:{c['score']:.4f}" for c in candidates)


def decode(text: str | None) -> list[dict]:
    out = []
    for item in (text or "").split():
        bear, _, score = item.rpartition(":")
        try:
            value = float(score)
        except ValueError:
            continue
        if bear and math.isfinite(value):
            out.append({"bear_id": bear, "score": value})
    return out


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


class ModelCandidates:
    """Candidates from a bundle's pipeline for faces whose landmarks the XML holds (no
    detection), kept per photo and face while the boxes stay as they were."""

    def __init__(self, pipeline, top: int = 5):
        self.pipeline, self.top = pipeline, top
        self.version = pipeline.version
        self._kept: dict[tuple[Path, int, tuple], list[dict]] = {}

    def of(self, path: Path, face: int, box: Box) -> list[dict]:
        key = (path, face, (box.left, box.top, box.width, box.height, tuple(sorted(box.parts.items()))))
        if key not in self._kept:
            [prediction] = self.pipeline.name_faces(path, [{k: tuple(v) for k, v in box.parts.items()}])
            self._kept[key] = (
                [{"bear_id": b, "score": round(s, 4)} for b, s in prediction.candidates[: self.top]]
                if prediction
                else []
            )
        return self._kept[key]
