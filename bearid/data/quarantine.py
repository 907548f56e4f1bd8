"""Quarantine: move what `clean` flagged out of the tree, with a log that undoes it exactly.

    ROOT/_quarantine/<reason>/<original relative path>
    ROOT/_quarantine/log.jsonl     one line per move and per restore

A move is a rename on the same disk (atomic; bytes and timestamps kept). Restore reads the
log, checks each file's hash and moves it back; it never overwrites a file that has since
appeared at the original place, and reports it instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bearid.data.catalog import Catalog
from bearid.data.clean import CleanReport
from bearid.errors import BearIDError
from bearid.fsio import sha256_file

QUARANTINE_DIR = "_quarantine"
LOG = "log.jsonl"


@dataclass
class MoveReport:
    moved: list[tuple[str, str]] = field(default_factory=list)  # (from, to), relative to root
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    batch: str = ""


def _log(root: Path, record: dict) -> None:
    path = root / QUARANTINE_DIR / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def check_reasons(reasons: set[str] | None) -> set[str] | None:
    """`reasons` if each is one that clean quarantines for (a typo must not look like
    'moved 0 files')."""
    from bearid.data.clean import PRIORITY

    unknown = sorted((reasons or set()) - set(PRIORITY))
    if unknown:
        raise BearIDError(
            f"--only {','.join(unknown)}: not a reason clean quarantines for; the reasons: {', '.join(PRIORITY)}"
        )
    return reasons


def apply(report: CleanReport, reasons: set[str] | None = None) -> MoveReport:
    """Move every file flagged for quarantine (optionally only for `reasons`)."""
    check_reasons(reasons)
    root = report.root
    out = MoveReport(batch=dt.datetime.now().strftime("%Y%m%dT%H%M%S.%f"))
    for path, finding in sorted(report.to_quarantine().items()):
        if reasons and finding.reason not in reasons:
            continue
        move_logged(root, path, f"{QUARANTINE_DIR}/{finding.reason}/{path}", out, finding.reason, finding.detail)
    with Catalog(root) as catalog:
        catalog.scan()
    return out


def move_logged(root: Path, path: str, to: str, out: MoveReport, reason: str, detail: str = "") -> None:
    """Move ROOT/path to ROOT/to (both relative), logged first so `restore` can undo it; a
    file no longer there, or a destination taken, is skipped and said so in `out`."""
    src, dst = root / path, root / to
    if not src.is_file():
        out.skipped.append((path, "no longer there"))
        return
    if dst.exists():
        out.skipped.append((path, f"{to} already exists"))
        return
    sha = sha256_file(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Log first: a crash between the two leaves a log line whose file is still in place,
    # which restore recognises and skips.
    _log(
        root,
        {
            "op": "move",
            "batch": out.batch,
            "from": path,
            "to": to,
            "sha256": sha,
            "reason": reason,
            "detail": detail,
            "time": dt.datetime.now().isoformat(timespec="seconds"),
        },
    )
    os.rename(src, dst)
    out.moved.append((path, to))


def restore(root: Path, batch: str | None = None, reason: str | None = None, strict: bool = True) -> MoveReport:
    """Move quarantined files back where they were (all, or one batch or reason). A batch or
    reason the log does not know is an error naming those it does (a typo must not look
    like 'restored 0 files'), unless not `strict`: an undo whose operation moved nothing yet."""
    root = Path(root)
    log = root / QUARANTINE_DIR / LOG
    out = MoveReport(batch=batch or "")
    if not log.exists():
        if (batch or reason) and strict:
            raise BearIDError(f"{root}: nothing was ever quarantined here (no {QUARANTINE_DIR}/{LOG})")
        return out
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    moves = [r for r in lines if r["op"] == "move"]
    for option, value, kinds, known in (
        ("--batch", batch, "batches", list(dict.fromkeys(r["batch"] for r in moves))),  # oldest first
        ("--reason", reason, "reasons", sorted({r["reason"] for r in moves})),
    ):
        if value and value not in known and strict:
            raise BearIDError(f"{option} {value}: not in {log}; {_listed(kinds, known)}")
    restored = {(r["batch"], r["from"]) for r in lines if r["op"] == "restore"}
    for r in reversed([r for r in lines if r["op"] == "move"]):
        if (r["batch"], r["from"]) in restored or (batch and r["batch"] != batch) or (reason and r["reason"] != reason):
            continue
        src, dst = root / r["to"], root / r["from"]
        if not src.is_file():
            if dst.is_file() and sha256_file(dst) == r["sha256"]:
                continue  # the move never happened (crash) or was undone by hand
            out.skipped.append((r["from"], f"{r['to']} is missing"))
            continue
        if dst.exists():
            out.skipped.append((r["from"], "a file is at the original place again; left both as they are"))
            continue
        if sha256_file(src) != r["sha256"]:
            out.skipped.append((r["from"], f"{r['to']} changed since it was quarantined"))
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
        _log(
            root,
            {
                "op": "restore",
                "batch": r["batch"],
                "from": r["from"],
                "to": r["to"],
                "sha256": r["sha256"],
                "time": dt.datetime.now().isoformat(timespec="seconds"),
            },
        )
        out.moved.append((r["to"], r["from"]))
        if root / QUARANTINE_DIR in src.parents:
            _prune_empty(src.parent, root / QUARANTINE_DIR)
    with Catalog(root) as catalog:
        catalog.scan()
    return out


def _listed(kinds: str, names: list[str], most: int = 10) -> str:
    """'the batches there: a, b' (the last `most` of them, the rest counted)."""
    if not names:
        return f"it lists no {kinds}"
    shown = names[-most:]
    more = f" (and {len(names) - len(shown)} earlier)" if len(names) > len(shown) else ""
    return f"the {kinds} there: {', '.join(shown)}{more}"


def _prune_empty(folder: Path, stop: Path) -> None:
    """Remove quarantine folders left empty by a restore (never the quarantine root)."""
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
