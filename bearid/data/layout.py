"""The source tree's conventions: where a photo sits says where, who, when and which bear.

    ROOT/<location>/<contributor>_<YYYYMM[DD]>/<folder>/<file>
    folder: <bear_id> | bear_unknown | bear_multiple | <bear_id>_cub | cubs

Files and folders whose names start with '_' or '.' (quarantine, ground truth, drops, the
catalog, temporary files) are not part of the archive: `walk` and `photos_under`, the one
way BearID lists photos, leave them out.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".heic"})
UNKNOWN = "bear_unknown"
MULTIPLE = "bear_multiple"
CUBS = "cubs"
# A bear ID: a site prefix and a number or name, lower case, e.g. bf_051, gc_12, kc_otis.
BEAR_ID = re.compile(r"^[a-z]{1,6}_[a-z0-9]+$")
CONTRIBUTION = re.compile(r"^(?P<who>[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*?)_(?P<date>\d{6}|\d{8})$")


def is_hidden(part: str) -> bool:
    return part.startswith(("_", "."))


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every file under `root` (its path relative to `root`, and its stat), leaving out what
    is hidden ('.' and '_' names). A link to a file counts as the file; links to folders are
    not followed (no loops, nothing outside `root` by surprise)."""
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for item in it:
                if is_hidden(item.name):
                    continue
                if item.is_dir(follow_symlinks=False):
                    stack.append(Path(item.path))
                elif item.is_file():
                    yield Path(item.path).relative_to(root).as_posix(), item.stat()


def photos_under(folder: Path) -> list[Path]:
    """Every photo under `folder`, sorted; hidden files and folders left out."""
    return sorted(Path(folder) / rel for rel, _ in walk(folder) if is_image_name(rel))


def location_of(path: Path) -> str:
    """The archive location a photo is from (the folder above its contribution folder)."""
    parts = PurePath(path).parts
    for i in range(1, len(parts)):
        if CONTRIBUTION.match(parts[i]):
            return parts[i - 1]
    return "other"


def is_bear_id(name: str) -> bool:
    return bool(BEAR_ID.match(name)) and name not in (UNKNOWN, MULTIPLE) and not name.endswith("_cub")


@dataclass(frozen=True)
class TreePlace:
    """What a photo's place in the tree says about it."""

    location: str | None
    contributor: str | None
    contribution_date: dt.date | None
    folder: str | None
    label: str | None  # the bear ID for a bear folder, else None
    kind: str  # known | unknown | multiple | cub | nonconforming | outside
    problem: str | None = None  # why the place breaks the conventions, if it does


def parse_contribution(name: str) -> tuple[str | None, dt.date | None]:
    m = CONTRIBUTION.match(name)
    if not m:
        return None, None
    raw = m["date"]
    try:
        date = dt.datetime.strptime(raw, "%Y%m%d" if len(raw) == 8 else "%Y%m").date()
    except ValueError:
        return m["who"], None
    return m["who"], date


def place_of(relpath: str) -> TreePlace:
    """Read the conventions off a path relative to the archive root."""
    parts = PurePosixPath(relpath).parts
    if len(parts) != 4:
        return TreePlace(
            parts[0] if len(parts) > 1 else None,
            None,
            None,
            None,
            None,
            "outside",
            f"expected <location>/<contributor>_<date>/<folder>/<file>, found {len(parts) - 1} folder level(s)",
        )
    location, contribution, folder, _ = parts
    who, date = parse_contribution(contribution)
    problem = None if date else f"contribution folder '{contribution}' is not <contributor>_<YYYYMM[DD]>"
    if folder == UNKNOWN:
        return TreePlace(location, who, date, folder, None, "unknown", problem)
    if folder == MULTIPLE:
        return TreePlace(location, who, date, folder, None, "multiple", problem)
    if folder == CUBS or (folder.endswith("_cub") and is_bear_id(folder[: -len("_cub")])):
        return TreePlace(location, who, date, folder, None, "cub", problem)
    if is_bear_id(folder):
        return TreePlace(location, who, date, folder, folder, "known", problem)
    return TreePlace(
        location,
        who,
        date,
        folder,
        None,
        "nonconforming",
        problem or f"folder '{folder}' is not a bear ID (like bf_051), bear_unknown, bear_multiple or <id>_cub",
    )
