"""One ID per track: faces found in a clip's frames, followed through it, named once.

Each sampled frame goes through the serving Pipeline's own parts, as a photo does: decoded
by `load_photo` (the frame handed over as an uncompressed PPM, so the shrink to the
detector's side is the photos' own), faces found by the bundle's finder, chips cut by
`chip_faces`. Each track keeps its best chips (most confident, largest faces); when it ends
they are embedded together, pooled (the mean of their unit embeddings, renormalised, at the
mean length of the network's outputs, since the open-set score reads length too) and
classified once with the open-set reject: a track is one bear, so it gets one answer, and
many views of a face outvote one bad frame.

A cheap first pass (triage) looks for a face in a few frames spread over the clip; a clip
with none is reported as holding no bear and skipped, as most camera-trap clips should be.
"""

from __future__ import annotations

import heapq
import io
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.chip import ChipResult, chip_faces
from bearid.embed import network_input, unit
from bearid.errors import BearIDError
from bearid.face import Detection
from bearid.imageio import Photo, load_photo
from bearid.video.decode import MAX_FRAME_PIXELS, MAX_SECONDS, ClipInfo, frames, probe
from bearid.video.track import Track, Tracker, TrackerConfig


@dataclass(frozen=True)
class VideoOptions:
    """How a clip is sampled, tracked and named."""

    stride: int = 1  # every stride-th frame is searched
    every: float = 0.0  # ... and no two less than this many seconds apart
    start: float = 0.0  # seconds
    end: float | None = None
    min_change: float = 0.0  # skip a frame that changed less than this from the last searched (0-255)
    cut_change: float = 40.0  # a change this large is a scene cut: tracks end there
    triage: bool = True  # look at a few frames first; a clip with no face there is skipped
    probe_every: float = 1.0  # seconds between triage frames ...
    max_probes: int = 8  # ... at most this many, spread over the clip
    best_chips: int = 5  # chips a track is named from (and writes as files)
    min_frames: int = 2  # shorter tracks are dropped: a face in one frame is most likely a false one
    max_seconds: float = MAX_SECONDS
    max_pixels: int = MAX_FRAME_PIXELS
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass
class BestChip:
    """A chip a track keeps: its quality, the frame and the face it was cut from."""

    quality: float
    frame: int
    time: float
    box: tuple[float, float, float, float]
    landmarks: dict[str, tuple[float, float]]
    chip: ChipResult


@dataclass
class TrackAnswer:
    """One track of a clip: when, where, and which bear."""

    track: int
    first: float  # seconds
    last: float
    frames: int  # frames the face was found in
    bear_id: str | None
    known: bool
    confidence: float
    familiarity: float
    candidates: list[tuple[str, float]]
    boxes: list[dict]  # {"frame", "time", "box": [left, top, width, height], "score"}
    best: list[BestChip] = field(default_factory=list)  # best first
    keyframe: Image.Image | None = None  # the frame of the best chip, for the keyframes XML
    keyframe_index: int | None = None


@dataclass
class ClipAnswer:
    """A clip's outcome: its tracks, or why it has none ("no_bear" by triage, "error")."""

    clip: Path
    status: str  # "tracked" | "no_bear" | "error"
    info: ClipInfo | None = None
    tracks: list[TrackAnswer] = field(default_factory=list)
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    frames_searched: int = 0
    seconds: float = 0.0
    faces_by_frame: dict[int, list[tuple[int, Detection]]] = field(default_factory=dict)  # frame -> (track, face)


def frame_photo(image: Image.Image, max_side: int | None) -> tuple[bytes, Photo]:
    """A frame as the Pipeline decodes a photo: its PPM bytes (for `chip_faces` to re-decode
    at full size when a chip needs it) and the Photo `load_photo` makes of them."""
    buffer = io.BytesIO()
    image.save(buffer, "PPM")
    data = buffer.getvalue()
    return data, load_photo(data, max_side=max_side)


def find_faces(pipeline, image: Image.Image) -> tuple[bytes, Photo, list[Detection]]:
    """The faces of one frame, by the bundle's finder, as `Pipeline.identify` finds a photo's."""
    data, photo = frame_photo(image, pipeline.refine_side)
    return data, photo, pipeline.finder.find(photo)


def pool(vectors: np.ndarray) -> np.ndarray:
    """One embedding for a track: the mean direction of its chips' embeddings, at their mean
    length (the classifier names bears by direction; its open-set score also reads length)."""
    v = np.asarray(vectors, dtype=np.float64)
    direction = unit(unit(v).mean(axis=0, keepdims=True))[0]
    return (direction * float(np.linalg.norm(v, axis=1).mean())).astype(np.float32)


def quality(det: Detection, chip_size: int) -> float:
    """A chip's worth for naming: the detector's confidence, times how much of the chip's
    resolution the face fills (a small face enlarged says little)."""
    side = math.sqrt(max(det.width * det.height, 0.0))
    return float(det.score) * min(1.0, side / max(1, chip_size))


def triage(pipeline, path: Path, options: VideoOptions, info: ClipInfo) -> tuple[bool, int]:
    """Whether a face is found in one of a few frames spread over the clip (every
    `probe_every` s, at most `max_probes`), and how many frames were searched: stops at the
    first face. Only those frames are converted and searched; the rest are only decoded."""
    length = info.duration or (info.frames or 0) / (info.fps or 25) or options.probe_every
    step = max(options.probe_every, length / max(1, options.max_probes))
    searched = 0
    probes = frames(
        path, start=options.start, end=options.end, every=step, cut_change=0, max_seconds=options.max_seconds
    )
    for frame in probes:
        searched += 1
        if find_faces(pipeline, frame.image)[2]:
            return True, searched
        if searched >= options.max_probes:
            break
    if searched == 0:
        raise BearIDError(f"{path}: no frame between {options.start:g} s and {_end(options)} to search")
    return False, searched


def _end(options: VideoOptions) -> str:
    return "the end" if options.end is None else f"{options.end:g} s"


def identify_clip(pipeline, path: Path, options: VideoOptions = VideoOptions()) -> ClipAnswer:
    """Track and name the faces of one clip. A clip that cannot be read is answered with
    status "error" and its message (never raised), so a batch goes on past it."""
    path = Path(path)
    t0 = time.perf_counter()
    answer = ClipAnswer(path, "tracked")
    if options.end is not None and options.end <= options.start:
        raise BearIDError(f"end {options.end:g} s is not after start {options.start:g} s")
    try:
        answer.info = info = probe(path, options.max_pixels, options.max_seconds)
        if options.triage:
            found, searched = triage(pipeline, path, options, info)
            answer.frames_searched += searched
            if not found:
                answer.status = "no_bear"
                return answer
        _track(pipeline, path, options, answer)
    except BearIDError as exc:
        answer.status, answer.error = "error", str(exc)
    finally:
        answer.seconds = time.perf_counter() - t0
    return answer


def _track(pipeline, path: Path, options: VideoOptions, answer: ClipAnswer) -> None:
    tracker = Tracker(options.tracker)
    best: dict[int, list[tuple[float, int, BestChip]]] = {}  # track -> min-heap of its best chips
    keyframes: dict[int, tuple[float, int, Image.Image]] = {}  # track -> (quality, frame, image)
    order = itertools.count()
    for frame in frames(
        path,
        stride=options.stride,
        every=options.every,
        start=options.start,
        end=options.end,
        min_change=options.min_change,
        cut_change=options.cut_change,
        max_pixels=options.max_pixels,
        max_seconds=options.max_seconds,
        on_problem=answer.problems.append,
    ):
        answer.frames_searched += 1
        if frame.cut:
            tracker.cut()
        data, photo, faces = find_faces(pipeline, frame.image)
        if not faces:
            tracker.update(frame.index, frame.time, [])
            continue
        ids = tracker.update(frame.index, frame.time, [f.box for f in faces], [f.score for f in faces])
        answer.faces_by_frame[frame.index] = list(zip(ids, faces))
        landmarks = [{k: tuple(v) for k, v in f.landmarks.items()} for f in faces]
        for track_id, det, marks, chip in zip(
            ids, faces, landmarks, chip_faces(data, landmarks, pipeline.chip_spec, photo)
        ):
            if chip.image is None:
                continue
            q = quality(det, pipeline.chip_spec.size)
            kept = best.setdefault(track_id, [])
            item = (q, next(order), BestChip(q, frame.index, frame.time, det.box, marks, chip))  # type: ignore[arg-type]
            if len(kept) < options.best_chips:
                heapq.heappush(kept, item)
            elif q > kept[0][0]:
                heapq.heapreplace(kept, item)
            if q > keyframes.get(track_id, (-1.0, 0, None))[0]:
                keyframes[track_id] = (q, frame.index, frame.image)
    if answer.frames_searched == 0:
        raise BearIDError(f"{path}: no frame between {options.start:g} s and {_end(options)} to search")
    tracks = [t for t in tracker.finish() if len(t.observations) >= options.min_frames and t.id in best]
    renumber = {t.id: i for i, t in enumerate(tracks)}  # the answer's numbering: tracks kept, in order
    answer.faces_by_frame = {
        f: [(renumber[t], d) for t, d in faces if t in renumber] for f, faces in answer.faces_by_frame.items()
    }
    answer.tracks = _name(pipeline, tracks, best, keyframes)


def _name(pipeline, tracks: list[Track], best: dict, keyframes: dict) -> list[TrackAnswer]:
    """Each track's best chips embedded in one call, pooled per track, classified once each."""
    chosen = [[item[2] for item in sorted(best[t.id], key=lambda i: (-i[0], i[1]))] for t in tracks]
    rows = [network_input(b.chip.image, pipeline.embed_size, pipeline.embed_norm) for bs in chosen for b in bs]
    vectors = pipeline.embed(np.stack(rows)) if rows else np.zeros((0, 1), np.float32)
    pooled, at = [], 0
    for bs in chosen:
        pooled.append(pool(vectors[at : at + len(bs)]))
        at += len(bs)
    predictions = pipeline.classifier.predictions(np.stack(pooled)) if pooled else []
    out = []
    for new_id, (track, bs, p) in enumerate(zip(tracks, chosen, predictions)):
        _, key_index, key_image = keyframes[track.id]
        out.append(
            TrackAnswer(
                track=new_id,
                first=round(track.first.time, 3),
                last=round(track.last.time, 3),
                frames=len(track.observations),
                bear_id=p.bear_id,
                known=p.known,
                confidence=round(p.confidence, 4),
                familiarity=round(p.familiarity, 4),
                candidates=[(b, round(s, 4)) for b, s in p.candidates],
                boxes=[
                    {
                        "frame": o.frame,
                        "time": round(o.time, 3),
                        "box": [round(v, 1) for v in o.box],
                        "score": round(o.score, 4),
                    }
                    for o in track.observations
                ],
                best=bs,
                keyframe=key_image,
                keyframe_index=key_index,
            )
        )
    return out


def identify_clips(
    pipeline,
    paths: list[Path],
    options: VideoOptions = VideoOptions(),
    on_clip: Callable[[ClipAnswer], None] | None = None,
) -> list[ClipAnswer]:
    """Several clips, each answered on its own: one clip's error never stops the others."""
    answers = []
    for path in paths:
        answer = identify_clip(pipeline, path, options)
        answers.append(answer)
        on_clip and on_clip(answer)
    return answers
