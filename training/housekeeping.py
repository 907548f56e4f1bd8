"""Results housekeeping: what each stage directory holds on disk (`bearid runs du`), and
pruning the bulky files of abandoned branches (`bearid runs prune`).

Pruning keeps what makes the history readable — config.yaml, metrics.json, plots, the
metadata XML and the small classifier — and removes weights, chip images and embeddings.
It never touches a directory on the best path or on the lineage of a promoted bundle, and
a pruned directory is marked (PRUNED.json), so `bearid train` recomputes it rather than
reusing a stage whose weights are gone.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bearid.fsio import atomic_write_text
from bearid.training import results
from bearid.training.runs import runs as find_runs

# Bulky parts per stage kind, by category.
BULKY = {
    "face_config": {"weights": ["model"]},
    "chip_config": {"chips": ["chip_images", "chip_cache"]},
    "embed_config": {"weights": ["model"], "embeddings": ["embeddings", "embed_meta"]},
    "class_config": {},
}
CATEGORIES = ("weights", "chips", "embeddings", "other")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _kind(d: Path) -> str:
    return d.name.rsplit("_", 1)[0]


@dataclass
class Usage:
    dir: Path
    bytes: dict[str, int] = field(default_factory=dict)
    pruned: bool = False

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def usage(d: Path) -> Usage:
    """Bytes per category in one stage directory (its child stages not counted)."""
    u = Usage(d, {c: 0 for c in CATEGORIES}, results.is_pruned(d))
    bulky = {name: cat for cat, names in BULKY[_kind(d)].items() for name in names}
    for item in d.iterdir():
        if item.is_dir() and any(item.name.startswith(s + "_") for s in results.STAGE_ORDER):
            continue
        u.bytes[bulky.get(item.name, "other")] += _size(item)
    return u


def du(root: Path) -> list[Usage]:
    return [usage(d) for d in results.stage_dirs(root)]


def protected(root: Path, by: str, keep: list[Path] | None = None, promoted: list[str] | None = None) -> set[Path]:
    """Directories never pruned: every stage of the best path (by `by`), of the paths in
    `keep`, and of the lineage paths (relative to `root`) of promoted bundles."""
    root = Path(root).resolve()
    ends = []
    best = find_runs(root, by).best
    if best:
        ends.append(best[-1].resolve())
    ends += [Path(p).resolve() for p in keep or []]
    ends += [(root / p).resolve() for p in promoted or []]
    out: set[Path] = set()
    for end in ends:
        d = end
        while d != root and root in d.parents:
            out.add(d)
            d = d.parent
    return out


def promoted_lineage(root: Path, store) -> list[str]:
    """Lineage paths in `root` of every bundle in the model store (bearid.serving.store.ModelStore)."""
    from bearid.serving import bundle as bundles

    root = Path(root).resolve()
    paths = []
    for version in store.versions():
        manifest = bundles.read_manifest(store.path_of(version))
        lineage = manifest.get("lineage", {})
        if Path(lineage.get("results", "")).resolve() == root:
            paths.append(lineage["path"])
    return paths


@dataclass
class PrunePlan:
    dirs: list[tuple[Path, int]]  # (stage dir, bytes it frees)
    kept: list[Path]

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.dirs)


def plan(root: Path, keep_dirs: set[Path]) -> PrunePlan:
    todo, kept = [], []
    for d in results.stage_dirs(root):
        if d.resolve() in keep_dirs:
            kept.append(d)
            continue
        u = usage(d)
        freed = sum(u.bytes[c] for c in BULKY[_kind(d)])
        if freed:
            todo.append((d, freed))
    return PrunePlan(todo, kept)


def apply(p: PrunePlan) -> None:
    """Mark each directory pruned first (so a half-pruned one is never reused), then delete."""
    for d, freed in p.dirs:
        names = [n for names in BULKY[_kind(d)].values() for n in names if (d / n).exists()]
        atomic_write_text(
            d / results.PRUNED,
            json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "removed": names, "bytes": freed}),
        )
        for n in names:
            shutil.rmtree(d / n)
