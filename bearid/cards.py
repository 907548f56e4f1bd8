"""A card per bear: its sightings (from the archive's folders and a faces XML) by date,
location and contributor, its reference faces, its cubs' folders and, given a bundle, its
look-alikes. The bear book prints the cards; the match review shows one under each candidate.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bearid.data.layout import is_bear_id, photos_under, place_of
from bearid.metadata import Dataset
from bearid.references import Reference, references


@dataclass
class Sighting:
    photo: Path
    location: str | None
    contributor: str | None
    date: dt.date | None


@dataclass
class Card:
    bear_id: str
    sightings: list[Sighting] = field(default_factory=list)
    faces: list[Reference] = field(default_factory=list)  # reference faces of the XML, with their dates
    cubs: list[str] = field(default_factory=list)  # cub folders, relative to the archive root
    lookalikes: list[tuple[str, float]] = field(default_factory=list)  # (bear, cosine similarity)
    name: str | None = None

    @property
    def dates(self) -> list[dt.date]:
        return sorted(s.date for s in self.sightings if s.date)

    def summary(self) -> dict:
        """What the match review shows under a candidate's name."""
        dates = self.dates
        return {
            "photos": len({s.photo for s in self.sightings}),
            "first_seen": dates[0].isoformat() if dates else None,
            "last_seen": dates[-1].isoformat() if dates else None,
            "locations": sorted({s.location for s in self.sightings if s.location}),
        }

    def by(self, what: str) -> Counter:
        if what == "year":
            return Counter(str(s.date.year) for s in self.sightings if s.date)
        return Counter(getattr(s, what) or "?" for s in self.sightings)


def cards(
    root: Path | None,
    dataset: Dataset | None,
    k: int = 4,
    parts: tuple[str, ...] = (),
    only: set[str] | None = None,
) -> dict[str, Card]:
    """A card per bear named in the XML or filed in a bear's folder of the archive (or `only` those)."""
    root = Path(root).resolve() if root else None
    found: dict[str, Card] = {}
    seen: set[tuple[str, Path]] = set()

    def sighting(bear: str, photo: Path) -> None:
        if (bear, photo) in seen or (only is not None and bear not in only):
            return
        seen.add((bear, photo))
        place = place_of(photo.relative_to(root).as_posix()) if root and root in photo.parents else None
        date = place.contribution_date if place else None
        found.setdefault(bear, Card(bear)).sightings.append(
            Sighting(photo, place.location if place else None, place.contributor if place else None, date)
        )

    if dataset is not None:
        for image in dataset.images:
            photo = dataset.path_of(image).resolve()
            for box in image.boxes:
                if box.label and is_bear_id(box.label) and not box.ignore:
                    sighting(box.label, photo)
    if root is not None:
        for photo in photos_under(root):
            place = place_of(photo.relative_to(root).as_posix())
            if place.kind == "known":
                sighting(place.label, photo.resolve())
            elif place.kind == "cub" and place.folder and place.folder.endswith("_cub"):
                mother = place.folder.removesuffix("_cub")
                if only is not None and mother not in only:
                    continue
                folder = photo.parent.relative_to(root).as_posix()
                card = found.setdefault(mother, Card(mother))
                if folder not in card.cubs:
                    card.cubs.append(folder)
    if dataset is not None:
        for bear, card in found.items():
            card.faces = references(dataset, bear, k=k, parts=parts)
    return dict(sorted(found.items()))


def lookalikes(found: dict[str, Card], dataset: Dataset, pipeline, k: int = 3) -> None:
    """Each card's nearest other bears: cosine similarity of the mean embedding of its faces."""
    centroids = {}
    for bear, card in found.items():
        rows = []
        for r in card.faces:
            image = dataset.images[r.image]
            rows.append(pipeline.embed_faces(dataset.path_of(image), [dict(image.boxes[r.face].parts)]))
        rows = [r for r in rows if len(r)]
        if rows:
            v = np.concatenate(rows).mean(axis=0)
            centroids[bear] = v / (np.linalg.norm(v) or 1.0)
    bears = list(centroids)
    if len(bears) < 2:
        return
    m = np.stack([centroids[b] for b in bears])
    sims = m @ m.T
    for a, bear in enumerate(bears):
        order = [b for b in np.argsort(-sims[a]) if b != a][:k]
        found[bear].lookalikes = [(bears[b], round(float(sims[a, b]), 3)) for b in order]
