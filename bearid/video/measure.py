"""Tracks scored against synthetic truth (OUT/_truth/videos.json): purity, fragmentation,
coverage, and the track-level BAKS/BAUS the photos' figures are set beside.

A found face matches the truth face it overlaps best in its frame (IoU 0.5 or more). A
track's truth is the truth track most of its matched faces belong to; its purity is their
share. A truth track's fragments are the found tracks that matched it at least once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from bearid.metrics import balanced_accuracy, iou

MATCH_IOU = 0.5


@dataclass
class TrackScore:
    """How a clip's (or a set of clips') tracks compare with the truth."""

    tracks: int  # found tracks
    truth_tracks: int  # truth tracks with a face at least half in frame
    purity: float  # mean over found tracks with a match: share of matched faces from its main truth track
    fragmentation: float  # mean found tracks per truth track that was found (1 = never broken)
    coverage: float  # share of truth faces a found track matched
    false_tracks: int  # found tracks that matched no truth face
    baks: float | None = None  # tracks of known bears named right, balanced over bears
    baus: float | None = None  # tracks of unknown bears called unknown, balanced over bears


@dataclass
class _Matched:
    truth: Counter  # truth track -> matched faces
    faces: int


def match_tracks(found: list[dict], truth_frames: list[dict]) -> tuple[list[_Matched], dict[int, int]]:
    """Per found track (dicts with "boxes": [{"frame", "box"}]), which truth tracks its faces
    matched; and the truth faces per truth track."""
    by_frame = {f["index"]: f["faces"] for f in truth_frames}
    truth_faces = Counter(face["track"] for f in truth_frames for face in f["faces"])
    matched = []
    for track in found:
        counts: Counter = Counter()
        for obs in track["boxes"]:
            faces = by_frame.get(obs["frame"], [])
            scored = [(iou(tuple(obs["box"]), tuple(face["box"])), face["track"]) for face in faces]
            best = max(scored, default=(0.0, None))
            if best[0] >= MATCH_IOU:
                counts[best[1]] += 1
        matched.append(_Matched(counts, len(track["boxes"])))
    return matched, dict(truth_faces)


def score_clips(clips: list[tuple[list[dict], dict]]) -> TrackScore:
    """(found tracks as `bearid video` writes them, the clip's truth entry) for each clip."""
    purities: list[float] = []
    fragments: list[int] = []
    covered = total = false_tracks = n_tracks = n_truth = 0
    known_truth: list[str] = []
    known_right: list[bool] = []
    unknown_truth: list[str] = []
    unknown_right: list[bool] = []
    for found, clip in clips:
        matched, truth_faces = match_tracks(found, clip["truth"])
        bears = {b["track"]: b for b in clip["bears"]}
        n_tracks += len(found)
        n_truth += len(truth_faces)
        total += sum(truth_faces.values())
        per_truth: dict[int, set[int]] = defaultdict(set)
        taken: Counter = Counter()
        for i, (track, m) in enumerate(zip(found, matched)):
            if not m.truth:
                false_tracks += 1
                continue
            main, hits = m.truth.most_common(1)[0]
            purities.append(hits / sum(m.truth.values()))
            for t, n in m.truth.items():
                per_truth[t].add(i)
                taken[t] += n
            bear = bears[main]
            if bear["known"]:
                known_truth.append(bear["bear_id"])
                known_right.append(track.get("bear_id") == bear["bear_id"])
            else:
                unknown_truth.append(bear["bear_id"])
                unknown_right.append(track.get("bear_id") is None)
        fragments += [len(per_truth[t]) for t in truth_faces if per_truth[t]]
        covered += sum(min(taken[t], truth_faces[t]) for t in truth_faces)
    return TrackScore(
        tracks=n_tracks,
        truth_tracks=n_truth,
        purity=float(np.mean(purities)) if purities else float("nan"),
        fragmentation=float(np.mean(fragments)) if fragments else float("nan"),
        coverage=covered / total if total else float("nan"),
        false_tracks=false_tracks,
        baks=balanced_accuracy(known_truth, known_right) if known_truth else None,
        baus=balanced_accuracy(unknown_truth, unknown_right) if unknown_truth else None,
    )
