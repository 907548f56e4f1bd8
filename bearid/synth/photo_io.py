"""Saving a synthetic photo as a camera would: JPEG, EXIF date, and sometimes a rotation
stored in the EXIF orientation tag instead of the pixels."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image, ImageOps

EXIF_IFD = 0x8769
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_MAKE = 0x010F
TAG_DATETIME_ORIGINAL = 0x9003

# Pixel operation that undoes each orientation (what the camera stored, given what a
# viewer shows). ImageOps.exif_transpose applies the forward operation.
_UNDO = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def as_stored(displayed: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores so that a viewer honouring `orientation` shows `displayed`."""
    op = _UNDO[orientation]
    return displayed if op is None else displayed.transpose(op)


def encode_jpeg(
    displayed: Image.Image, orientation: int, taken: dt.datetime, quality: int, make: str = "BearID synth"
) -> bytes:
    exif = Image.Exif()
    exif[TAG_MAKE] = make
    exif[TAG_ORIENTATION] = orientation
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif[TAG_DATETIME] = stamp
    exif.get_ifd(EXIF_IFD)[TAG_DATETIME_ORIGINAL] = stamp
    buf = io.BytesIO()
    as_stored(displayed, orientation).save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def open_displayed(path) -> Image.Image:
    """Open a photo as a viewer shows it (EXIF orientation applied), in RGB."""
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")
