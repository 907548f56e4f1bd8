"""Split: train / val / test / holdout imglab XML files from the archive.

Modes (`by`):
- "image": each bear's photos are divided by the ratios (closed-set: every bear in train);
- "bear":  bears are divided, so no identity is in two splits (open-set evaluation);
- "time":  each bear's photos are grouped by day (or a window of days) and whole groups are
           divided, so one day never straddles two splits; `year_cutoff` sends every photo
           taken from that year on to test.
Bears with fewer than `min_images` photos, and `bear_unknown` photos, go to holdout: the
unknown bears for open-set tests. Deterministic for a seed. Near-duplicates that landed in
different splits are reported as leaks, and with `fix_leaks` moved to the earliest split.
A split the ratios ask for that comes out empty (too few photos, bears or days) is written
all the same and named, with why, in `SplitReport.warnings`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bearid.data.catalog import Catalog, Entry
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text
from bearid.metadata import Dataset, ImageEntry, write_faces

SPLITS = ("train", "val", "test")
HOLDOUT = "holdout"
ORDER = {name: i for i, name in enumerate((*SPLITS, HOLDOUT))}
MODES = ("image", "bear", "time")


@dataclass(frozen=True)
class SplitConfig:
    by: str = "image"
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    min_images: int = 3
    seed: int = 0
    window_days: int = 1
    year_cutoff: int | None = None
    fix_leaks: bool = False

    def __post_init__(self) -> None:
        if self.by not in MODES:
            raise BearIDError(f"split --by {self.by}: choose one of {', '.join(MODES)}")
        if len(self.ratios) != 3 or min(self.ratios) < 0 or not 0.99 < sum(self.ratios) < 1.01:
            raise BearIDError(f"split ratios {self.ratios}: three non-negative numbers that add up to 1")
        if self.window_days < 1:
            raise BearIDError("split --window-days must be at least 1")


@dataclass
class Item:
    entry: Entry
    image: ImageEntry  # what goes into the XML (boxes from the faces file, if any)

    @property
    def label(self) -> str:
        return self.entry.label or self.entry.folder or ""


@dataclass
class SplitReport:
    config: SplitConfig
    assignment: dict[str, str] = field(default_factory=dict)  # path -> split
    labels: dict[str, str] = field(default_factory=dict)  # path -> bear
    leaks: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # one line each: an empty split, and why

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name in (*SPLITS, HOLDOUT):
            paths = [p for p, s in self.assignment.items() if s == name]
            out[name] = {"photos": len(paths), "bears": len({self.labels[p] for p in paths})}
        return out


def _time_group(e: Entry, window_days: int) -> str:
    """The group a photo's day belongs to; undated photos group by contribution."""
    if e.taken:
        day = dt.datetime.fromisoformat(e.taken).date()
        return f"d{day.toordinal() // window_days}"
    return f"c{e.location}/{e.contribution_date}/{e.contributor}"


def _divide(units: list[list[Item]], ratios, rng: np.random.Generator, weigh=len) -> list[str]:
    """Give each unit (a list of photos kept together) a split, aiming at the ratios in
    weight (photos, unless told otherwise): units in random order, each to the split
    furthest below its target."""
    order = rng.permutation(len(units))
    total = sum(weigh(u) for u in units)
    have = np.zeros(3)
    out = [""] * len(units)
    for rank, k in enumerate(order):
        if rank == 0:
            choice = 0  # train always gets something
        else:
            deficit = np.array(ratios) * total - have
            choice = int(np.argmax(deficit))
        out[k] = SPLITS[choice]
        have[choice] += weigh(units[k])
    return out


def assign(items: list[Item], config: SplitConfig) -> dict[str, str]:
    rng = np.random.default_rng(config.seed)
    by_bear: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_bear[item.label].append(item)
    result: dict[str, str] = {}
    if config.by == "bear":
        bears = sorted(by_bear)
        # Aim at the ratios in bears: a few heavily photographed bears must not make test
        # a single identity.
        chosen = _divide([by_bear[b] for b in bears], config.ratios, rng, weigh=lambda unit: 1)
        for bear, split in zip(bears, chosen):
            result.update({i.entry.path: split for i in by_bear[bear]})
        return result
    for bear in sorted(by_bear):
        photos = sorted(by_bear[bear], key=lambda i: i.entry.path)
        if config.year_cutoff is not None:
            late = [i for i in photos if i.entry.taken and int(i.entry.taken[:4]) >= config.year_cutoff]
            result.update({i.entry.path: "test" for i in late})
            photos = [i for i in photos if i not in late]
        if config.by == "image":
            units = [[i] for i in photos]
        else:
            groups: dict[str, list[Item]] = defaultdict(list)
            for i in photos:
                groups[_time_group(i.entry, config.window_days)].append(i)
            units = [groups[k] for k in sorted(groups)]
        ratios = config.ratios
        if config.year_cutoff is not None:  # test is the late photos: divide the rest into train/val
            ratios = (
                config.ratios[0] / (config.ratios[0] + config.ratios[1]),
                config.ratios[1] / (config.ratios[0] + config.ratios[1]),
                0.0,
            )
        for unit, split in zip(units, _divide(units, ratios, rng) if units else []):
            result.update({i.entry.path: split for i in unit})
    return result


def empty_splits(report: SplitReport, known: list[Item], config: SplitConfig) -> list[str]:
    """One line for each split the ratios give a share that came out empty, saying why."""
    counts = report.counts()
    bears = len({i.label for i in known})
    unit = {"image": "photos of each bear", "bear": "bears", "time": "days of each bear"}[config.by]
    out = []
    for name, ratio in zip(SPLITS, config.ratios):
        if counts[name]["photos"]:
            continue
        if name == "test" and config.year_cutoff is not None:
            why = f"no photo of a known bear was taken in {config.year_cutoff} or later (--year-cutoff)"
        elif ratio == 0:
            continue  # asked for
        else:
            why = (
                f"{len(known)} photos of {bears} bear(s) with {config.min_images}+ photos are too few "
                f"to give it its {ratio:g} share of the {unit} (more photos, other --ratios, or another --by)"
            )
        out.append(f"the {name} split is empty: {why}")
    return out


def find_leaks(assignment: dict[str, str], entries: dict[str, Entry]) -> list[dict]:
    """Near-duplicate (or identical) photos that sit in different splits."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for path in assignment:
        e = entries[path]
        if e.near_cluster is not None:
            groups[("near", e.near_cluster)].append(path)
        if e.dup_cluster is not None:
            groups[("same", e.dup_cluster)].append(path)
    leaks = []
    for (kind, _), paths in sorted(groups.items()):
        splits = {assignment[p] for p in paths}
        if len(splits) > 1:
            leaks.append({"kind": kind, "paths": sorted(paths), "splits": sorted(splits, key=ORDER.get)})
    return leaks


def split(root: Path, out: Path, config: SplitConfig, faces: Dataset | None = None) -> SplitReport:
    """Write train/val/test/holdout XML (+ split.json) for the archive at `root` into `out`."""
    root, out = Path(root), Path(out)
    with Catalog(root) as catalog:
        catalog.scan()
        entries = {e.path: e for e in catalog.entries()}
    report = SplitReport(config)
    face_images: dict[str, ImageEntry] = {}
    if faces is not None:
        for image in faces.images:
            try:
                rel = faces.path_of(image).resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
            face_images[rel] = dataclasses.replace(image, file=rel)
    known: list[Item] = []
    holdout: list[Item] = []
    for path, e in sorted(entries.items()):
        if e.error:
            report.skipped["unreadable"] += 1
            continue
        if faces is not None and path not in face_images:
            report.skipped["not in the faces file"] += 1
            continue
        image = face_images.get(path) or ImageEntry(path, width=e.width, height=e.height)
        if e.kind == "known":
            known.append(Item(e, image))
        elif e.kind == "unknown":
            holdout.append(Item(e, image))
        else:
            report.skipped[f"{e.kind} photos"] += 1
    per_bear = Counter(i.label for i in known)
    rare = {b for b, n in per_bear.items() if n < config.min_images}
    holdout += [i for i in known if i.label in rare]
    known = [i for i in known if i.label not in rare]
    if not known:
        raise BearIDError(f"{root}: no bear has {config.min_images} or more photos to split")
    report.assignment = assign(known, config)
    report.assignment.update({i.entry.path: HOLDOUT for i in holdout})
    report.labels = {i.entry.path: i.label for i in known + holdout}
    report.leaks = find_leaks(report.assignment, entries)
    if config.fix_leaks:
        for leak in report.leaks:
            first = min(leak["splits"], key=ORDER.get)
            report.assignment.update({p: first for p in leak["paths"]})
        report.leaks = find_leaks(report.assignment, entries)
    report.warnings = empty_splits(report, known, config)
    images = {i.entry.path: i.image for i in known + holdout}
    for name in (*SPLITS, HOLDOUT):
        chosen = [images[p] for p, s in sorted(report.assignment.items()) if s == name]
        dataset = Dataset(
            chosen, name=f"bearid {name} split", comment=f"by {config.by}, seed {config.seed}", base_dir=root
        )
        write_faces(dataset, out / f"{name}.xml")
        report.files[name] = out / f"{name}.xml"
    summary = {
        "config": dataclasses.asdict(config),
        "counts": report.counts(),
        "leaks": report.leaks,
        "skipped": dict(report.skipped),
        "holdout_bears": sorted(rare),
        "warnings": report.warnings,
    }
    atomic_write_text(out / "split.json", json.dumps(summary, indent=1))
    return report
