"""Faces tracked across frames: box overlap with a constant-velocity guess, greedily matched.

Written here rather than taken from a tracker library: of the maintained ones on PyPI,
norfair pins NumPy below 2 (BearID runs NumPy 2), `trackers` (ByteTrack, SORT) brings
supervision and OpenCV into the service image, and motpy and sort-tracker have not been
released since 2021/2022. A bear clip holds one to a few faces a frame, so a greedy match on
overlap (IoU) against each track's predicted box, with a distance gate for a face that moved
further than its own width between sampled frames, is all the association it needs, and
its gaps are measured in seconds, so a variable frame rate or a stride changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bearid.metrics import iou

BoxT = tuple[float, float, float, float]  # left, top, width, height


@dataclass
class Observation:
    """One face of a track in one frame."""

    frame: int
    time: float
    box: BoxT
    score: float


@dataclass
class Track:
    """A face followed through a clip; `id` counts from 0 in the order tracks begin."""

    id: int
    observations: list[Observation] = field(default_factory=list)
    ended: bool = False

    @property
    def first(self) -> Observation:
        return self.observations[0]

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    def predict(self, time: float) -> BoxT:
        """Where the face will be at `time`: its last box moved on at its recent velocity
        (over the last second of observations), growing or shrinking as it did."""
        last = self.last
        if len(self.observations) < 2 or time <= last.time:
            return last.box
        ref = next((o for o in reversed(self.observations[:-1]) if last.time - o.time >= 0.2), self.observations[-2])
        span = max(last.time - ref.time, 1e-6)
        dt = min(time - last.time, 1.0)  # a long gap: trust the velocity for a second at most
        (lx, ly, lw, lh), (rx, ry, rw, rh) = last.box, ref.box
        vx = ((lx + lw / 2) - (rx + rw / 2)) / span
        vy = ((ly + lh / 2) - (ry + rh / 2)) / span
        grow = math.exp(math.log(max(lw, 1e-6) / max(rw, 1e-6)) / span * dt)
        w, h = lw * grow, lh * grow
        cx, cy = lx + lw / 2 + vx * dt, ly + lh / 2 + vy * dt
        return (cx - w / 2, cy - h / 2, w, h)


@dataclass(frozen=True)
class TrackerConfig:
    min_iou: float = 0.2  # overlap with a track's predicted box that continues it
    max_distance: float = 0.75  # else: centre distance, in box sides, that still continues it
    first_distance: float = 1.5  # the same for a track seen once: its velocity is not known yet
    max_size_change: float = 1.6  # ... if the box did not grow or shrink more than this
    max_gap: float = 1.0  # seconds a track waits for its face (behind grass, a missed detection)


class Tracker:
    """Feed it each sampled frame's boxes in time order; it says which track each one is."""

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.tracks: list[Track] = []

    @property
    def live(self) -> list[Track]:
        return [t for t in self.tracks if not t.ended]

    def _affinity(self, track: Track, box: BoxT, time: float) -> float:
        """How well `box` continues `track`: its IoU with the predicted box, or, below
        `min_iou`, a score under it from the centre distance; 0 for no match."""
        guess = track.predict(time)
        overlap = iou(guess, box)
        if overlap >= self.config.min_iou:
            return overlap
        side = (guess[2] + guess[3] + box[2] + box[3]) / 4
        ratio = max(guess[2], box[2]) / max(min(guess[2], box[2]), 1e-6)
        dx = (guess[0] + guess[2] / 2) - (box[0] + box[2] / 2)
        dy = (guess[1] + guess[3] / 2) - (box[1] + box[3] / 2)
        distance = math.hypot(dx, dy) / max(side, 1e-6)
        gate = self.config.first_distance if len(track.observations) == 1 else self.config.max_distance
        if distance > gate or ratio > self.config.max_size_change:
            return 0.0
        return self.config.min_iou * (1 - distance / gate) + 1e-6

    def update(self, frame: int, time: float, boxes: list[BoxT], scores: list[float] | None = None) -> list[int]:
        """The track id of each box of this frame (new tracks for faces no track explains).
        Tracks that waited longer than `max_gap` for their face end first."""
        scores = scores if scores is not None else [1.0] * len(boxes)
        for track in self.live:
            if time - track.last.time > self.config.max_gap:
                track.ended = True
        live = self.live
        pairs = sorted(
            (
                (self._affinity(t, b, time), ti, bi)
                for ti, t in enumerate(live)
                for bi, b in enumerate(boxes)
                if t.last.frame != frame
            ),
            reverse=True,
        )
        owner: dict[int, Track] = {}
        taken: set[int] = set()
        for score, ti, bi in pairs:
            if score <= 0:
                break
            if ti in taken or bi in owner:
                continue
            owner[bi] = live[ti]
            taken.add(ti)
        ids = []
        for bi, box in enumerate(boxes):
            track = owner.get(bi)
            if track is None:
                track = Track(len(self.tracks))
                self.tracks.append(track)
            track.observations.append(Observation(frame, time, tuple(box), float(scores[bi])))  # type: ignore[arg-type]
            ids.append(track.id)
        return ids

    def cut(self) -> None:
        """A scene change: every live track ends (a face after a cut is a new track)."""
        for track in self.live:
            track.ended = True

    def finish(self) -> list[Track]:
        """End every track; all of them, in the order they began."""
        self.cut()
        return list(self.tracks)
