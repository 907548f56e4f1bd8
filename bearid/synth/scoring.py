"""Scoring BearID's data tools against what a synthetic world planted.

Maps each clean check to the files the world says should trip it, and counts hits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bearid.data.clean import CleanReport
from bearid.synth.tree import TRUTH_DIR

# Planted defect -> the clean reason that should report it.
EXPECTED_REASON = {
    "exact_duplicate": "exact_duplicate",
    "near_duplicate": "near_duplicate",
    "truncated": "corrupt",
    "garbage": "not_image",
    "not_image": "not_image",
    "tiny": "tiny",
    "blurry": "blurry",
    "too_dark": "too_dark",
    "too_bright": "too_bright",
    "bad_label_dir": "bad_place",
    "unknown_part": "unknown_part",
    "missing_landmarks": "missing_landmarks",
    "missing_label": "missing_label",
    "label_mismatch": "label_mismatch",
}


# For duplicates either file of a pair may be the one set aside: score pairs.
_PAIRED = {"exact_duplicate", "near_duplicate"}


def _duplicate_key(path: str, other: str | None) -> frozenset[str]:
    return frozenset({path, other or path})


@dataclass
class CheckScore:
    reason: str
    planted: int
    flagged: int
    hits: int

    @property
    def precision(self) -> float:
        return self.hits / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.hits / self.planted if self.planted else 1.0


def expected_findings(world: Path) -> dict[str, set]:
    """reason -> paths (pairs, for duplicates) the world's truth says it should report."""
    world = Path(world)
    planted = (
        json.loads((world / TRUTH_DIR / "messy.json").read_text())
        if (world / TRUTH_DIR / "messy.json").exists()
        else []
    )
    facts = json.loads((world / TRUTH_DIR / "world.json").read_text())
    want: dict[str, set[str]] = {}
    for p in planted:
        if p["path"].startswith(("_", ".")):
            continue  # drops and curator files are not part of the archive tree
        if (reason := EXPECTED_REASON.get(p["defect"])) is not None:
            want.setdefault(reason, set()).add(
                _duplicate_key(p["path"], p["detail"].get("of")) if reason in _PAIRED else p["path"]
            )
    photos = facts["photos"]
    want["no_bear"] = {p["path"] for p in photos if p["kind"] == "empty"}
    want["cub"] = {p["path"] for p in photos if p["kind"] == "cub"}
    limit = facts["config"]["max_yaw"]
    want["extreme_pose"] = {p["path"] for p in photos if any(abs(f["yaw"]) > limit for f in p["faces"])}
    return want


def score_clean(report: CleanReport, world: Path, reasons: list[str] | None = None) -> list[CheckScore]:
    want = expected_findings(world)
    got: dict[str, set] = {}
    for f in report.findings:
        got.setdefault(f.reason, set()).add(_duplicate_key(f.path, f.related) if f.reason in _PAIRED else f.path)
    out = []
    for reason in reasons or sorted(want):
        w, g = want.get(reason, set()), got.get(reason, set())
        out.append(CheckScore(reason, len(w), len(g), len(w & g)))
    return out
