"""What `POST /identify_video` (a BentoML task: submit, poll, get) answers, and what it
refuses, ready for the service to call: the limits are checked first, from the upload's size
and the clip's header (cheap), so a clip too big, too long or with too many pixels a frame
is a 4xx before a frame is searched, and a long clip never holds a photo worker longer
than the limits allow.

The answer is typed (pydantic, like the photo endpoints' `bearid.serving.schema`): the
clip's facts, every track with its times, ID, familiarity and boxes, and the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bearid.serving.schema import Box, Candidate, ModelRef
from bearid.serving.uploads import Refusal
from bearid.video.decode import ClipError, probe
from bearid.video.identify import VideoOptions, identify_clip


@dataclass(frozen=True)
class VideoLimits:
    """What the service takes: an upload's bytes, a clip's seconds and a frame's pixels."""

    max_bytes: int = 200 * 1024 * 1024
    max_seconds: float = 120.0
    max_pixels: int = 3840 * 2160


class _Record(BaseModel):
    """Open like the photo answers: a client keeps fields a newer service adds."""

    model_config = ConfigDict(extra="allow")


class TrackPoint(_Record):
    frame: int
    time: float = Field(description="seconds from the clip's start")
    box: Box
    score: float


class VideoTrack(_Record):
    track: int
    first: float = Field(description="seconds from the clip's start")
    last: float
    frames: int = Field(description="frames the face was found in")
    bear_id: str | None = Field(description="null: a bear the model does not know")
    known: bool
    confidence: float
    familiarity: float = Field(description="the open-set score of the track's pooled embedding")
    candidates: list[Candidate] = Field(default_factory=list)
    boxes: list[TrackPoint]


class ClipFacts(_Record):
    width: int
    height: int
    fps: float
    duration: float | None
    codec: str
    rotation: int


class VideoIdentified(_Record):
    """`POST /identify_video`: the bears of one clip, a track each."""

    status: str = Field(description="tracked | no_bear (the first pass found no face) | no_track")
    clip: ClipFacts
    tracks: list[VideoTrack]
    problems: list[str] = Field(default_factory=list, description="e.g. a clip cut short: its frames up to the cut")
    frames_searched: int
    model: ModelRef


def check_clip(path: Path, limits: VideoLimits) -> Refusal | None:
    """Why an uploaded clip is refused (its size, its header's length or pixels, not a
    video), or None: a 413 for what is over a limit, a 400 for what is not a clip."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return Refusal(400, "empty", "the uploaded clip is empty (0 bytes)")
    if size > limits.max_bytes:
        return Refusal(413, "too_large", f"the uploaded clip is {size} bytes; the limit is {limits.max_bytes}")
    try:
        probe(path, max_pixels=limits.max_pixels, max_seconds=limits.max_seconds)
    except ClipError as exc:
        message = str(exc).replace(str(path), "the uploaded clip")
        if "too many pixels" in message:
            return Refusal(413, "too_many_pixels", message)
        if "too long" in message:
            return Refusal(413, "too_long", message)
        return Refusal(400, "bad_video", message)
    return None


def identify_upload(
    pipeline, path: Path, limits: VideoLimits = VideoLimits(), options: VideoOptions | None = None
) -> VideoIdentified | Refusal:
    """An uploaded clip's answer, or its refusal (never raised: the task's result says it)."""
    refused = check_clip(path, limits)
    if refused is not None:
        return refused
    options = dataclasses.replace(
        options or VideoOptions(), max_seconds=limits.max_seconds, max_pixels=limits.max_pixels
    )
    answer = identify_clip(pipeline, path, options)
    if answer.status == "error" or answer.info is None:
        return Refusal(400, "bad_video", (answer.error or "unreadable").replace(str(path), "the uploaded clip"))
    info = answer.info
    tracks = [
        VideoTrack(
            track=t.track,
            first=t.first,
            last=t.last,
            frames=t.frames,
            bear_id=t.bear_id,
            known=t.known,
            confidence=t.confidence,
            familiarity=t.familiarity,
            candidates=[Candidate(bear_id=b, score=s) for b, s in t.candidates],
            boxes=[
                TrackPoint(
                    frame=b["frame"],
                    time=b["time"],
                    box=Box(**dict(zip(("left", "top", "width", "height"), b["box"]))),
                    score=b["score"],
                )
                for b in t.boxes
            ],
        )
        for t in answer.tracks
    ]
    status = answer.status if answer.status != "tracked" or tracks else "no_track"
    return VideoIdentified(
        status=status,
        clip=ClipFacts(
            width=info.width,
            height=info.height,
            fps=round(info.fps, 3),
            duration=None if info.duration is None else round(info.duration, 3),
            codec=info.codec,
            rotation=info.rotation,
        ),
        tracks=tracks,
        problems=[p.replace(str(path), "the uploaded clip") for p in answer.problems],
        frames_searched=answer.frames_searched,
        model=ModelRef(version=pipeline.version),
    )
