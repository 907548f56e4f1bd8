"""Decoding photos as a viewer shows them: EXIF orientation applied, RGB, and (for
detection) decoded straight at a reduced size with Pillow's JPEG draft mode.

One implementation for training, evaluation and the service.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from bearid.errors import BearIDError

MAX_PIXELS = 120_000_000  # refuse larger images: decompression bombs


class TooManyPixels(BearIDError):
    """An image larger than BearID decodes (a decompression bomb, or simply too big)."""


@dataclass
class Photo:
    """A decoded photo: `image` is upright RGB; `scale` = image size / displayed size."""

    image: Image.Image
    width: int  # displayed (upright) size of the original
    height: int
    scale: float = 1.0


def _name(source: Path | str | bytes) -> str:
    return "the uploaded photo" if isinstance(source, (bytes, bytearray)) else str(source)


def _open(source: Path | str | bytes) -> Image.Image:
    if isinstance(source, (bytes, bytearray)) and not source:
        raise BearIDError("the photo is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except FileNotFoundError:
        raise BearIDError(f"{source}: no such photo") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(f"{_name(source)} has too many pixels (a decompression bomb?)") from None
    except Image.UnidentifiedImageError:
        raise BearIDError(
            f"{_name(source)} is not an image format BearID reads (JPEG, PNG, TIFF, WebP, GIF, BMP)"
        ) from None
    except Exception as exc:
        raise BearIDError(f"{_name(source)} is not a readable image: {exc}") from None
    if img.width * img.height > MAX_PIXELS:
        raise TooManyPixels(
            f"{_name(source)} has too many pixels ({img.width}x{img.height}; the limit is {MAX_PIXELS})"
        )
    return img


def _orientation(img: Image.Image, source: Path | str | bytes) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception as exc:
        raise BearIDError(f"{_name(source)} cannot be decoded: {exc}") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB; 16-bit and 32-bit greys are scaled down, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return img.convert("RGB")


def displayed_size(source: Path | str | bytes) -> tuple[int, int]:
    """(width, height) of a photo as displayed (EXIF orientation applied), from its header."""
    img = _open(source)
    orientation = _orientation(img, source)
    return (img.height, img.width) if orientation in (5, 6, 7, 8) else img.size


def load_photo(source: Path | str | bytes, max_side: int | None = None) -> Photo:
    """Decode a photo upright in RGB; with `max_side`, at most that long (draft-decoded for
    JPEG, so a 12 MP photo is not decoded in full to be shrunk)."""
    img = _open(source)
    orientation = _orientation(img, source)
    w, h = img.size
    width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    try:
        if max_side and img.format == "JPEG":
            k = max_side / max(width, height)
            if k < 1:
                img.draft("RGB", (int(w * k) + 1, int(h * k) + 1))
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except Exception as exc:
        raise BearIDError(f"{_name(source)} cannot be decoded: {exc}") from None
    if max_side and max(img.size) > max_side:
        k = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.BILINEAR)
    return Photo(img, width, height, img.width / width)
