"""The source tree's conventions: where a photo sits says where, who, when and which bear.

    ROOT/<location>/<contributor>_<YYYYMM[DD]>/<folder>/<file>
    folder: <bear_id> | bear_unknown | bear_multiple | <bear_id>_cub | cubs

Folders whose names start with '_' or '.' (quarantine, ground truth, drops, the catalog) are
not part of the archive.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

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
            parts[0] if len(parts) > 1 else None, None, None, None, None, "outside",
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
    return TreePlace(location, who, date, folder, None, "nonconforming",
                     problem or f"folder '{folder}' is not a bear ID (like bf_051), bear_unknown, bear_multiple or <id>_cub")
