"""Merge, split and undo of bear IDs, everywhere they are written: in the XML (journalled, one
operation over many photos) and, given the archive's root, in its folders (a plan of moves
by default; applied through the quarantine log, batch = the operation's id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bearid.data import quarantine, regroup
from bearid.label.store import LabelStore, new_op_id


@dataclass
class Outcome:
    op: dict
    moves: list[regroup.Move] = field(default_factory=list)  # the plan (applied or not)
    moved: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def merge(store: LabelStore, keep: str, gone: str, who: str, root: Path | None = None, apply: bool = False) -> Outcome:
    return _follow(store, store.merge(keep, gone, who), who, root, apply)


def split(
    store: LabelStore,
    faces: list[tuple[int, int]],
    prefix: str,
    who: str,
    name: str | None = None,
    root: Path | None = None,
    apply: bool = False,
) -> Outcome:
    return _follow(store, store.split(faces, who, prefix, name), who, root, apply)


def file_photos(store: LabelStore, root: Path, who: str, apply: bool = False) -> Outcome:
    """File every photo under the bear the XML names on it (after a review named new bears)."""
    moves = regroup.plan(Path(root), store.dataset)
    out = Outcome({"kind": "file", "id": f"file-{new_op_id()}", "faces": 0, "photos": len(moves)}, moves=moves)
    return _moved(store, root, out, who) if apply else out


def undo(store: LabelStore, op_id: str, who: str, root: Path | None = None) -> Outcome:
    """The IDs put back, and the files the operation moved moved back (by its log batch)."""
    moved, skipped = [], []
    if root is not None:  # the files first, so the XML names each photo where it was
        report = quarantine.restore(Path(root), batch=op_id, strict=False)
        store.refile(Path(root), report.moved, who)  # (where it was, where it is now)
        moved, skipped = report.moved, report.skipped
    return Outcome(store.undo(op_id, who), moved=moved, skipped=skipped)


def _follow(store: LabelStore, op: dict, who: str, root: Path | None, apply: bool) -> Outcome:
    out = Outcome(op)
    if root is None:
        return out
    photos = {e["file"] for e in store.history() if e.get("op", {}).get("id") == op["id"]}
    out.moves = regroup.plan(Path(root), store.dataset, photos)
    return _moved(store, root, out, who) if apply else out


def _moved(store: LabelStore, root: Path, out: Outcome, who: str) -> Outcome:
    """Make the planned moves (batch: the operation's id) and name the photos where they are now."""
    if out.moves:
        report = regroup.apply(Path(root), out.moves, out.op["id"])
        store.refile(Path(root), report.moved, who)
        out.moved, out.skipped = report.moved, report.skipped
    return out
