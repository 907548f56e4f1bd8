"""After a review, a merge or a split, the archive's folders follow the XML: a photo filed in a
bear's folder (`<location>/<contributor>_<date>/<bear_id>/`) or in `bear_unknown/` whose named
faces are now all one other bear moves to that bear's folder beside it (so `bearid data split`
files it with that bear). A plan first (nothing moves); applied, each move
goes through the quarantine log (a rename, bytes and times kept), so `bearid data restore
ROOT --batch OP` or `bearid ids undo` puts every file back. Nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bearid.data.layout import is_bear_id, place_of
from bearid.data.quarantine import MoveReport, move_logged
from bearid.metadata import Dataset


@dataclass(frozen=True)
class Move:
    path: str  # relative to the archive root
    to: str
    bear: str


def plan(root: Path, dataset: Dataset, photos: set[str] | None = None) -> list[Move]:
    """The moves that file each photo (of `photos`, XML file names; default all) under the bear
    the XML now names on it. Photos outside `root`, in no bear's folder, or with faces of
    several bears stay where they are."""
    root = Path(root).resolve()
    moves = []
    for image in dataset.images:
        if photos is not None and image.file not in photos:
            continue
        path = dataset.path_of(image).resolve()
        if root not in path.parents:
            continue
        rel = PurePosixPath(path.relative_to(root).as_posix())
        place = place_of(str(rel))
        named = {b.label for b in image.boxes if b.label and not b.ignore}
        if place.kind not in ("known", "unknown") or len(named) != 1:
            continue
        bear = named.pop()
        if bear != place.label and is_bear_id(bear):
            moves.append(Move(str(rel), str(rel.parent.parent / bear / rel.name), bear))
    return moves


def apply(root: Path, moves: list[Move], batch: str) -> MoveReport:
    out = MoveReport(batch=batch)
    for m in moves:
        move_logged(Path(root), m.path, m.to, out, "regroup", f"filed under {m.bear}")
    return out
