"""Decoding clips as a viewer shows them: upright RGB frames with their times, through PyAV.

What cameras write is met here: H.264 and MPEG-4 (any codec FFmpeg reads), a variable frame
rate (each frame keeps its own time), a phone's rotation kept in the display matrix,
interlaced frames (deinterlaced), odd sizes, and a clip cut mid-stream (its frames up to the
cut, with a problem noted). A clip BearID cannot use (not a video, no frames, too many pixels
a frame, too long) is one `ClipError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.errors import BearIDError, require

MAX_FRAME_PIXELS = 36_000_000  # 8K is 33 MP: larger frames are refused (a bomb, or no camera's)
MAX_SECONDS = 3600.0  # a longer clip is refused unless the caller raises the limit
_UPRIGHT = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


class ClipError(BearIDError):
    """A clip that cannot be decoded or is refused: the message names it and says why."""


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says: its displayed size, rotation, frame rate and length."""

    path: Path
    codec: str
    width: int  # displayed (upright) size
    height: int
    rotation: int  # degrees counter-clockwise a player turns the stored frames (0, 90, 180, 270)
    fps: float  # average frame rate (a variable-rate clip's frames keep their own times)
    duration: float | None  # seconds, when the container says
    frames: int | None  # frames, when the container says


@dataclass
class Frame:
    """One decoded frame, upright: `index` counts the clip's frames from 0, `time` is seconds
    from the clip's start, `cut` marks a scene change from the frame kept before it."""

    index: int
    time: float
    image: Image.Image
    cut: bool = False


def _av():
    require("video", "decoding video", "av")
    import av

    return av


def _open(path: Path):
    av = _av()
    path = Path(path)
    if not path.exists():
        raise ClipError(f"{path}: no such clip")
    if path.is_dir():
        raise ClipError(f"{path} is a folder, not a clip")
    if path.stat().st_size == 0:
        raise ClipError(f"{path} is empty (0 bytes)")
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as exc:
        raise ClipError(f"{path} is not a video BearID can read ({_why(exc)})") from None
    if not container.streams.video:
        container.close()
        raise ClipError(f"{path} holds no video stream")
    return container


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(": '")[0] or type(exc).__name__


def _rotation(stream, frame=None) -> int:
    """The display matrix's rotation, as a multiple of 90 degrees in 0..270."""
    value = getattr(frame, "rotation", 0) if frame is not None else 0
    return int(round((value or 0) / 90.0)) * 90 % 360


def probe(path: Path, max_pixels: int = MAX_FRAME_PIXELS, max_seconds: float = MAX_SECONDS) -> ClipInfo:
    """A clip's facts, from its header and first frame; ClipError for a clip BearID cannot use."""
    av = _av()
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if width * height > max_pixels:
            raise ClipError(f"{path} has too many pixels a frame ({width}x{height}; the limit is {max_pixels})")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if duration is not None and duration > max_seconds:
            raise ClipError(f"{path} is too long ({duration:.0f} s; the limit is {max_seconds:.0f} s)")
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise ClipError(f"{path}: its first frame cannot be decoded ({_why(exc)})") from None
        if first is None:
            raise ClipError(f"{path} holds no frames")
        rotation = _rotation(stream, first)
        if first.width * first.height > max_pixels:
            raise ClipError(f"{path} has too many pixels a frame ({first.width}x{first.height})")
        w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return ClipInfo(path, ctx.name, w, h, rotation, float(rate) if rate else 0.0, duration, stream.frames or None)


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.BILINEAR), dtype=np.float32)


def frames(
    path: Path,
    stride: int = 1,
    start: float = 0.0,
    end: float | None = None,
    every: float = 0.0,
    min_change: float = 0.0,
    cut_change: float = 40.0,
    max_pixels: int = MAX_FRAME_PIXELS,
    max_seconds: float = MAX_SECONDS,
    on_problem: Callable[[str], None] | None = None,
) -> Iterator[Frame]:
    """Upright frames of a clip from `start` (a seek to the keyframe before it) to `end`
    seconds, every `stride`-th frame, and with `every`, no two frames less than that many
    seconds apart (by their own times: a variable frame rate is sampled evenly). With
    `min_change`, a frame that differs from the last one kept by less (mean absolute grey
    difference on a 32x32 thumbnail, 0-255) is skipped:
    a camera trap's still scene is not worth a detector's time. A frame that differs by
    `cut_change` or more is marked `cut` (a scene change: a track does not run across it).

    A clip cut mid-stream yields its frames up to the cut and tells `on_problem`; one whose
    first frame cannot be decoded is a ClipError."""
    av = _av()
    if stride < 1:
        raise BearIDError(f"stride {stride}: must be 1 or more")
    path = Path(path)
    probe(path, max_pixels, max_seconds)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.time_base or 1
        origin = stream.start_time or 0
        if start > 0:
            container.seek(int(start / base) + origin, stream=stream, backward=True, any_frame=False)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        thumb, count, index, last = None, 0, -1, None
        decoded = iter(container.decode(stream))
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                declared = stream.frames or 0
                if on_problem and start <= 0 and index + 1 < declared:
                    on_problem(f"{path} is cut short: {index + 1} of its {declared} frames are there, and used")
                break
            except av.FFmpegError as exc:
                if count == 0:
                    raise ClipError(f"{path}: no frame could be decoded ({_why(exc)})") from None
                if on_problem:
                    on_problem(f"{path} is cut or damaged after {count} frames ({_why(exc)}): those frames are used")
                break
            index += 1
            time = float((frame.pts - origin) * base) if frame.pts is not None else index / rate
            if time < start - 1e-6:
                continue
            if end is not None and time > end:
                break
            count += 1
            if (count - 1) % stride or (every > 0 and last is not None and time - last < every - 1e-6):
                continue
            image = frame.to_image()
            if frame.interlaced_frame:
                image = _deinterlace(image)
            rotation = _rotation(stream, frame)
            if rotation:
                image = image.transpose(_UPRIGHT[rotation])
            small = _thumb(image) if (min_change > 0 or cut_change > 0) else None
            change = float(np.abs(small - thumb).mean()) if small is not None and thumb is not None else None
            if change is not None and change < min_change:
                continue
            thumb, last = small, time
            number = index if start <= 0 else round(time * rate)
            yield Frame(number, time, image, cut=change is not None and change >= cut_change)


def _deinterlace(image: Image.Image) -> Image.Image:
    """Blend each line with the next: the two fields of an interlaced frame, taken at two
    moments, stop combing a moving face's edges (one frame in, one out, no delay)."""
    a = np.asarray(image, dtype=np.uint16)
    out = a.copy()
    out[:-1] = (a[:-1] + a[1:] + 1) // 2
    return Image.fromarray(out.astype(np.uint8))


def count_frames(path: Path) -> int:
    """The frames a clip decodes to (demuxed and decoded, nothing converted): the decode-only
    baseline the bench sets the whole path against."""
    n = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
    return n
