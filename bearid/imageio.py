"""Decoding photos as a viewer shows them: EXIF orientation applied, RGB, and (for
detection) decoded straight at a reduced size with Pillow's JPEG draft mode.

One implementation for training, evaluation and the service.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from bearid.errors import BearIDError

MAX_PIXELS = 120_000_000  # refuse larger images: decompression bombs


@dataclass
class Photo:
    """A decoded photo: `image` is upright RGB; `scale` = image size / displayed size."""

    image: Image.Image
    width: int  # displayed (upright) size of the original
    height: int
    scale: float = 1.0


def _open(source: Path | str | bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except FileNotFoundError:
        raise BearIDError(f"{source}: no such photo") from None
    except Exception as exc:
        raise BearIDError(f"not a readable image: {exc}") from None
    if img.width * img.height > MAX_PIXELS:
        raise BearIDError(f"image has too many pixels ({img.width}x{img.height})")
    return img


def displayed_size(source: Path | str | bytes) -> tuple[int, int]:
    """(width, height) of a photo as displayed (EXIF orientation applied), from its header."""
    img = _open(source)
    orientation = img.getexif().get(0x0112, 1) or 1
    return (img.height, img.width) if orientation in (5, 6, 7, 8) else img.size


def load_photo(source: Path | str | bytes, max_side: int | None = None) -> Photo:
    """Decode a photo upright in RGB; with `max_side`, at most that long (draft-decoded for
    JPEG, so a 12 MP photo is not decoded in full to be shrunk)."""
    img = _open(source)
    orientation = img.getexif().get(0x0112, 1) or 1
    w, h = img.size
    width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    try:
        if max_side and img.format == "JPEG":
            k = max_side / max(width, height)
            if k < 1:
                img.draft("RGB", (int(w * k) + 1, int(h * k) + 1))
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
    except Exception as exc:
        raise BearIDError(f"cannot decode the image: {exc}") from None
    if max_side and max(img.size) > max_side:
        k = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.BILINEAR)
    return Photo(img, width, height, img.width / width)
