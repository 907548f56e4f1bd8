"""Which photos need a person, and which one each volunteer sees next.

A queue is a rule that gives a photo a reason to be looked at (or none). A photo leaves a
queue when a volunteer moves on from it there (it is then recorded as reviewed) or when the
reason goes away (its missing landmarks were placed). A volunteer holds the photo on their
screen for a while (a lease), and the next photo offered to someone else skips it, so
several volunteers at once work on different photos.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bearid.errors import BearIDError
from bearid.metadata import ImageEntry
from bearid.references import needs_match


@dataclass
class QueueContext:
    unsure_below: float = 0.5  # a detection scored below this needs a look
    flags: dict[Path, list[str]] = field(default_factory=dict)  # photo -> `bearid data clean` findings
    confident: float = 0.7  # a bear named with less confidence waits in the match review
    disputes: dict[Path, str] = field(default_factory=dict)  # photo -> where its annotators disagree (--redundancy)


def _all(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    return f"{len(image.boxes)} face(s)"


def _unsure(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    scores = []
    for box in image.boxes:
        try:
            score = float(box.attrs.get("detection_score", "nan"))
        except ValueError:
            continue
        if score < ctx.unsure_below:
            scores.append(score)
    return f"detector scores {', '.join(f'{s:.2f}' for s in scores)} below {ctx.unsure_below}" if scores else None


def _landmarks(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    missing = [
        f"face {n + 1}: {' '.join(box.missing_landmarks())}"
        for n, box in enumerate(image.boxes)
        if not box.ignore and box.missing_landmarks()
    ]
    return "missing " + "; ".join(missing) if missing else None


def _flagged(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    found = ctx.flags.get(path)
    return "; ".join(found) if found else None


def _unknown(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    n = sum(1 for box in image.boxes if not box.ignore and (not box.label or box.attrs.get("known") == "false"))
    return f"{n} face(s) with no known bear ID" if n else None


def _match(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    waiting = [f"face {n + 1}: {why}" for n, box in enumerate(image.boxes) if (why := needs_match(box, ctx.confident))]
    return "; ".join(waiting) if waiting else None


def _disagreement(image: ImageEntry, path: Path, ctx: QueueContext) -> str | None:
    return ctx.disputes.get(path)


Rule = Callable[[ImageEntry, Path, QueueContext], "str | None"]
QUEUES: dict[str, tuple[str, Rule]] = {
    "all": ("every photo, in order", _all),
    "unsure": ("faces the detector was unsure of", _unsure),
    "landmarks": ("faces missing landmarks", _landmarks),
    "flagged": ("photos `bearid data clean` flagged", _flagged),
    "unknown": ("faces with no bear ID, or that `bearid score` called unknown", _unknown),
    "match": ("faces to name, side by side with the bears they could be (the match review)", _match),
    "disagreement": (
        "photos whose annotators disagree (bearid label --redundancy): a curator settles them",
        _disagreement,
    ),
}


def check_queue(name: str) -> str:
    if name not in QUEUES:
        raise BearIDError(f"no queue {name!r}; queues: {', '.join(QUEUES)}")
    return name


def read_flags(report: Path) -> dict[Path, list[str]]:
    """Photo -> findings from a `bearid data clean` report.json (paths under its root)."""
    try:
        data = json.loads(Path(report).read_text())
        root = Path(data["root"])
        out: dict[Path, list[str]] = {}
        for f in data["findings"]:
            out.setdefault((root / f["path"]).resolve(), []).append(f"{f['reason']}: {f['detail']}")
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BearIDError(f"{report}: not a `bearid data clean` report.json ({exc})") from exc


class Leases:
    """Who has which photo on screen; a lease lapses after `ttl` seconds without a word."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._held: dict[int, tuple[str, float]] = {}

    def holder(self, i: int) -> str | None:
        held = self._held.get(i)
        return held[0] if held and held[1] > self.clock() else None

    def take(self, i: int, volunteer: str) -> None:
        """`volunteer` now has photo `i` (and no longer any other)."""
        for j in [j for j, (who, _) in self._held.items() if who == volunteer]:
            del self._held[j]
        self._held[i] = (volunteer, self.clock() + self.ttl)


def pick(candidates: list[int], after: int | None, step: int, free: Callable[[int], bool]) -> int | None:
    """The first of `candidates` (sorted photo numbers) after `after` going `step` (+1 or -1),
    wrapping around, for which `free` holds."""
    if not candidates:
        return None
    if after is None:
        order = candidates if step > 0 else candidates[::-1]
    elif step > 0:
        order = [i for i in candidates if i > after] + [i for i in candidates if i <= after]
    else:
        order = [i for i in reversed(candidates) if i < after] + [i for i in reversed(candidates) if i >= after]
    return next((i for i in order if free(i)), None)
