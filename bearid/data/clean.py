"""Clean: find what should not be trained on, with a reason code, a score and a threshold.

The checks follow the curators' list: unwanted observations (exact and near duplicates,
photos with no bear), structural errors (corrupt or unsupported files, folders that break
the naming conventions, XML labels that disagree with folders, unknown parts, missing
landmarks or labels), outliers (tiny, blurry, too dark or bright, cubs, extreme poses) and
imbalance (bears with too few photos). Findings whose action is "quarantine" are moved by
`quarantine.apply`; the others are for a person to look at.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bearid.data.catalog import Catalog, Entry
from bearid.errors import BearIDError
from bearid.metadata import Dataset, validate

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG"})
QUARANTINE = "quarantine"
REPORT = "report"
# When a file fails several checks it is quarantined under the first of these.
PRIORITY = [
    "not_image",
    "corrupt",
    "unsupported_format",
    "exact_duplicate",
    "near_duplicate",
    "no_bear",
    "tiny",
    "blurry",
    "too_dark",
    "too_bright",
]


@dataclass(frozen=True)
class Thresholds:
    near_distance: int = 6  # max Hamming distance between perceptual hashes
    min_side: int = 256  # px, shorter side
    min_sharpness: float = 10.0  # variance of the Laplacian at 256 px and standard contrast
    min_brightness: float = 25.0  # mean grey level
    max_brightness: float = 200.0
    min_images: int = 3  # a bear with fewer photos goes to the hold-out set of unknown bears
    max_nose_offset: float = 0.4  # nose off the eyes' midline, along the eye axis, / eye distance


@dataclass
class Finding:
    path: str  # relative to the archive root
    reason: str
    action: str  # quarantine | report
    detail: str
    score: float | None = None
    threshold: float | None = None
    related: str | None = None  # the photo this one duplicates, if any


@dataclass
class CleanReport:
    root: Path
    thresholds: Thresholds
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0

    def by_reason(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = defaultdict(list)
        for f in self.findings:
            out[f.reason].append(f)
        return dict(sorted(out.items()))

    def to_quarantine(self) -> dict[str, Finding]:
        """One finding per file to move: the file's first reason in PRIORITY order."""
        chosen: dict[str, Finding] = {}
        for f in sorted((f for f in self.findings if f.action == QUARANTINE), key=lambda f: PRIORITY.index(f.reason)):
            chosen.setdefault(f.path, f)
        return chosen

    def to_json(self) -> dict:
        return {
            "root": str(self.root),
            "checked": self.checked,
            "thresholds": dataclasses.asdict(self.thresholds),
            "counts": {reason: len(items) for reason, items in self.by_reason().items()},
            "findings": [dataclasses.asdict(f) for f in self.findings],
        }


_KIND_RANK = {"known": 0, "multiple": 1, "cub": 2, "unknown": 3}


def _keeper_order(e: Entry) -> tuple:
    """Which copy of a duplicate group stays: one filed under a bear, from the earliest
    contribution, the sharpest, with the shortest name (copies tend to have longer ones)."""
    name = e.path.rsplit("/", 1)[-1]
    return (_KIND_RANK.get(e.kind, 4), e.contribution_date or "9999", -(e.sharpness or 0.0), len(name), e.path)


def check_files(entries: list[Entry], t: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    for e in entries:
        if e.error:
            reason = "not_image" if e.error in ("not an image", "empty file") else "corrupt"
            out.append(Finding(e.path, reason, QUARANTINE, e.error))
            continue
        if e.format not in SUPPORTED_FORMATS:
            out.append(
                Finding(
                    e.path, "unsupported_format", QUARANTINE, f"{e.format} is not one of {sorted(SUPPORTED_FORMATS)}"
                )
            )
        side = min(e.width or 0, e.height or 0)
        if side < t.min_side:
            out.append(Finding(e.path, "tiny", QUARANTINE, f"{e.width}x{e.height}", side, t.min_side))
        if e.sharpness is not None and e.sharpness < t.min_sharpness:
            out.append(
                Finding(e.path, "blurry", QUARANTINE, "little fine detail", round(e.sharpness, 2), t.min_sharpness)
            )
        if e.brightness is not None and e.brightness < t.min_brightness:
            out.append(
                Finding(e.path, "too_dark", QUARANTINE, "mean grey level", round(e.brightness, 1), t.min_brightness)
            )
        if e.brightness is not None and e.brightness > t.max_brightness:
            out.append(
                Finding(e.path, "too_bright", QUARANTINE, "mean grey level", round(e.brightness, 1), t.max_brightness)
            )
        if e.kind in ("nonconforming", "outside") or e.place_problem:
            out.append(Finding(e.path, "bad_place", REPORT, e.place_problem or e.kind))
        if e.kind == "cub":
            out.append(Finding(e.path, "cub", REPORT, "cubs change too fast: kept apart from training"))
    return out


def check_duplicates(
    entries: list[Entry], near: dict[int, list[Entry]], exact: dict[int, list[Entry]]
) -> list[Finding]:
    out: list[Finding] = []
    for group in exact.values():
        keep, *rest = sorted(group, key=_keeper_order)
        out += [
            Finding(e.path, "exact_duplicate", QUARANTINE, f"same bytes as {keep.path}", 0, 0, keep.path) for e in rest
        ]
    for group in near.values():
        # Exact copies are handled above: keep one file per distinct content.
        distinct = {e.sha256: e for e in sorted(group, key=_keeper_order, reverse=True)}
        if len(distinct) < 2:
            continue
        keep, *rest = sorted(distinct.values(), key=_keeper_order)
        out += [
            Finding(e.path, "near_duplicate", QUARANTINE, f"looks like {keep.path}", None, None, keep.path)
            for e in rest
        ]
    return out


def check_balance(entries: list[Entry], flagged: set[str], t: Thresholds) -> list[Finding]:
    per_bear: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.label and e.path not in flagged:
            per_bear[e.label].append(e)
    out = []
    for bear, items in sorted(per_bear.items()):
        if len(items) < t.min_images:
            out += [
                Finding(
                    e.path,
                    "few_images",
                    REPORT,
                    f"{bear} has {len(items)} usable photo(s): hold-out (unknown) bear",
                    len(items),
                    t.min_images,
                )
                for e in items
            ]
    return out


def check_faces(faces: Dataset, by_path: dict[str, Entry], root: Path, t: Thresholds) -> list[Finding]:
    """Checks that need face metadata: no bear, label disagreements, structure, extreme pose."""
    out: list[Finding] = []
    bad = {(f.image, f.box): f for f in validate(faces)}
    for image in faces.images:
        try:
            rel = faces.path_of(image).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue  # a photo outside this archive
        entry = by_path.get(rel)
        if entry is None:
            continue
        if not image.boxes:
            out.append(Finding(rel, "no_bear", QUARANTINE, "no face in the face metadata"))
        for i, box in enumerate(image.boxes):
            if (f := bad.get((image.file, i))) is not None:
                out.append(Finding(rel, f.code, REPORT, f.message))
            if entry.kind == "known" and len(image.boxes) == 1 and box.label and box.label != entry.label:
                out.append(Finding(rel, "label_mismatch", REPORT, f"XML says {box.label}, folder says {entry.label}"))
            if (offset := nose_offset(box)) is not None and offset > t.max_nose_offset:
                out.append(
                    Finding(
                        rel,
                        "extreme_pose",
                        REPORT,
                        "head turned far to one side (nose far off the eyes' midline)",
                        round(offset, 2),
                        t.max_nose_offset,
                    )
                )
    return out


def nose_offset(box) -> float | None:
    """How far the head is turned: the nose's distance from the eyes' midpoint, measured along
    the eye axis, in inter-eye distances (about 0.05 frontal, 0.5 at 40 degrees of yaw)."""
    p = box.parts
    if not all(k in p for k in ("leye", "reye", "nose")):
        return None
    (lx, ly), (rx, ry), (nx, ny) = p["leye"], p["reye"], p["nose"]
    eyes = math.dist((lx, ly), (rx, ry))
    if eyes < 1:
        return None
    ux, uy = (lx - rx) / eyes, (ly - ry) / eyes
    return abs((nx - (lx + rx) / 2) * ux + (ny - (ly + ry) / 2) * uy) / eyes


def clean(
    root: Path,
    thresholds: Thresholds | None = None,
    faces: list[Dataset] | None = None,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> CleanReport:
    """Scan the archive (incrementally; `progress(done, total)` per photo read) and run every
    check; changes nothing on disk."""
    root = Path(root)
    t = thresholds or Thresholds()
    with Catalog(root) as catalog:
        catalog.scan(workers=workers, near_distance=t.near_distance, progress=progress)
        entries = catalog.entries()
    if not entries:
        raise BearIDError(f"{root}: no photos found (expected <location>/<contributor>_<date>/<bear>/ folders)")
    near: dict[int, list[Entry]] = defaultdict(list)
    exact: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.near_cluster is not None:
            near[e.near_cluster].append(e)
        if e.dup_cluster is not None:
            exact[e.dup_cluster].append(e)
    findings = check_files(entries, t) + check_duplicates(entries, near, exact)
    for dataset in faces or []:
        findings += check_faces(dataset, {e.path: e for e in entries}, root, t)
    flagged = {f.path for f in findings if f.action == QUARANTINE}
    findings += check_balance(entries, flagged, t)
    return CleanReport(root, t, findings, checked=len(entries))
