"""Stats: what the archive holds, per location, contributor, year, season and bear, and how
big the faces are; as tables and as an HTML page with plots."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bearid.data.catalog import Catalog, Entry
from bearid.fsio import atomic_write_text
from bearid.metadata import Dataset

SEASONS = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "autumn",
    10: "autumn",
    11: "autumn",
}


@dataclass
class ArchiveStats:
    photos: int = 0
    bytes: int = 0
    unreadable: int = 0
    per_location: Counter = field(default_factory=Counter)
    per_contributor: Counter = field(default_factory=Counter)
    per_year: Counter = field(default_factory=Counter)
    per_season: Counter = field(default_factory=Counter)
    per_kind: Counter = field(default_factory=Counter)
    per_bear: Counter = field(default_factory=Counter)
    face_sides: list[int] = field(default_factory=list)  # face box sides, px (with a faces file)

    def images_per_bear_histogram(self) -> Counter:
        """How many bears have 1, 2, 3, ... photos."""
        return Counter(self.per_bear.values())

    def tables(self) -> dict[str, list[tuple[str, int]]]:
        out = {
            "location": sorted(self.per_location.items()),
            "contributor": sorted(self.per_contributor.items()),
            "year": sorted(self.per_year.items()),
            "season": sorted(self.per_season.items()),
            "folder kind": sorted(self.per_kind.items()),
            "bear": sorted(self.per_bear.items(), key=lambda kv: (-kv[1], kv[0])),
            "photos per bear (bears)": sorted(self.images_per_bear_histogram().items()),
        }
        if self.face_sides:
            bins = Counter(_size_bin(s) for s in self.face_sides)
            out["face size, px (faces)"] = [(label, n) for (_, label), n in sorted(bins.items())]
        return {k: [(str(a), b) for a, b in v] for k, v in out.items()}


_FACE_EDGES = [0, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960]


def _size_bin(side: int) -> tuple[int, str]:
    """(lower edge, label) of the face-size bin of a box side."""
    for lo, hi in zip(_FACE_EDGES, _FACE_EDGES[1:]):
        if side < hi:
            return lo, f"{lo}-{hi - 1}"
    return _FACE_EDGES[-1], f"{_FACE_EDGES[-1]}+"


def archive_stats(root: Path, faces: Dataset | None = None, workers: int = 0) -> ArchiveStats:
    with Catalog(root) as catalog:
        catalog.scan(workers=workers)
        entries = catalog.entries()
    s = ArchiveStats()
    for e in entries:
        s.photos += 1
        s.bytes += e.size
        if e.error:
            s.unreadable += 1
            continue
        _count(s, e)
    if faces is not None:
        s.face_sides = [box.width for _, box in faces.faces()]
    return s


def _count(s: ArchiveStats, e: Entry) -> None:
    s.per_location[e.location or "?"] += 1
    s.per_contributor[e.contributor or "?"] += 1
    s.per_kind[e.kind] += 1
    when = e.taken_at
    s.per_year[str(when.year) if when else "undated"] += 1
    s.per_season[SEASONS[when.month] if when else "undated"] += 1
    if e.label:
        s.per_bear[e.label] += 1


def _plot(title: str, rows: list[tuple[str, int]]) -> str | None:
    """A bar chart as an inline PNG, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=90)
    ax.bar([r[0] for r in rows], [r[1] for r in rows], color="#8b5a2b")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_stats_html(stats: ArchiveStats, path: Path, title: str) -> Path:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>BearID stats</title>",
        "<style>body{font-family:sans-serif;margin:1.5em} td,th{padding:1px 10px;text-align:left} "
        "section{display:inline-block;vertical-align:top;margin:0 2em 2em 0}</style>",
        f"<h1>{html.escape(title)}</h1><p>{stats.photos} photos, {stats.bytes / 1e6:.1f} "
        f"MB, {stats.unreadable} unreadable, {len(stats.per_bear)} bears.</p>",
    ]
    for name, rows in stats.tables().items():
        parts.append(f"<section><h2>{html.escape(name)}</h2>")
        if (uri := _plot(name, rows)) is not None:
            parts.append(f"<img src='{uri}' alt='{html.escape(name)}'>")
        parts.append(
            "<table>"
            + "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table></section>"
        )
    atomic_write_text(Path(path), "\n".join(parts))
    return Path(path)
