"""Writing a clip as a camera would: H.264 or MPEG-4 in MP4, a frame rate or each frame's own
time (variable frame rate), and a rotation kept in the display matrix instead of the pixels.

Used by the synthetic clips and by the tests' odd clips; BearID never re-encodes a user's clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.errors import BearIDError
from bearid.fsio import atomic_path

CODECS = {"h264": "libx264", "mpeg4": "mpeg4"}
TIME_BASE = Fraction(1, 1000)  # frame times in milliseconds: any variable frame rate fits
# What the pixels must be turned by (PIL, counter-clockwise) so a player honouring the
# display matrix (`rotation` degrees counter-clockwise) shows the frame upright.
_STORE = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def write_clip(
    path: Path,
    frames: Iterable[Image.Image],
    fps: float,
    codec: str = "h264",
    times: Sequence[float] | None = None,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    quality: int = 23,
    interlaced: bool = False,
) -> Path:
    """Encode upright `frames` to `path` (MP4, atomically, moov atom first so a copy cut short
    still plays up to the cut). `times` (seconds) gives each frame its own time; `rotation`
    (0, 90, 180, 270) is stored as metadata and the pixels turned so a player shows `frames`;
    `interlaced` (H.264) codes each frame as two fields, as broadcast and older trail cameras do.
    Deterministic: one encoder thread, no creation time."""
    import av

    if codec not in CODECS:
        raise BearIDError(f"codec {codec!r}: one of {', '.join(CODECS)}")
    if rotation % 360 not in _STORE:
        raise BearIDError(f"rotation {rotation}: one of 0, 90, 180, 270")
    turn = _STORE[rotation % 360]
    path = Path(path)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container,
    ):
        stream = container.add_stream(CODECS[codec], rate=Fraction(fps).limit_denominator(1001))
        stream.codec_context.time_base = TIME_BASE
        stream.thread_count = 1
        if codec == "h264":
            stream.options = {"preset": "ultrafast", "crf": str(quality), "threads": "1"}
            if interlaced:
                stream.options = {**stream.options, "x264-params": "interlaced=1:tff=1"}
        else:
            stream.bit_rate = 2_000_000
            stream.options = {"threads": "1"}
        if rotation % 360:
            stream.set_display_rotation(rotation % 360)
        first = True
        for i, image in enumerate(frames):
            stored = image.transpose(turn) if turn is not None else image
            if first:
                stream.width, stream.height, stream.pix_fmt = stored.width, stored.height, pix_fmt
                first = False
            frame = av.VideoFrame.from_ndarray(np.asarray(stored.convert("RGB")), format="rgb24")
            frame.pts = round((times[i] if times is not None else i / fps) / TIME_BASE)
            frame.time_base = TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
