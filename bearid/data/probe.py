"""What one image file is: hash, format, size, EXIF date and orientation, quality scores and
a perceptual hash. One pass over the bytes; decoding uses Pillow's draft mode (JPEG DCT
scaling) because the scores only need a small grey image.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse decompression bombs: larger images are reported, not decoded.
MAX_PIXELS = 200_000_000
SCORE_SIDE = 256  # quality scores are measured at this size, so they compare across photos
STANDARD_CONTRAST = 50.0  # grey-level standard deviation the sharpness score is measured at
EXIF_IFD = 0x8769
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_DATETIME_ORIGINAL = 0x9003


@dataclass
class ImageFacts:
    size: int
    mtime_ns: int
    sha256: str
    format: str | None = None
    width: int | None = None  # as displayed (after EXIF orientation)
    height: int | None = None
    orientation: int | None = None
    taken: str | None = None  # ISO date-time from EXIF
    sharpness: float | None = None  # variance of the Laplacian at SCORE_SIDE, standard contrast
    brightness: float | None = None  # mean grey level, 0..255
    contrast: float | None = None  # grey level standard deviation
    phash: int | None = None  # 64-bit DCT perceptual hash (signed, for SQLite)
    error: str | None = None  # why the file is not a usable image

    @property
    def ok(self) -> bool:
        return self.error is None


def probe(path: Path, analyse: bool = True) -> ImageFacts:
    """Everything the catalog keeps about one file. Never raises for a bad image.

    With `analyse=False` (quick) the pixels are not decoded: hash, header, EXIF and a
    structural check only; quality scores and the perceptual hash stay empty.
    """
    path = Path(path)
    st = os.stat(path)
    data = path.read_bytes()
    facts = ImageFacts(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=hashlib.sha256(data).hexdigest())
    describe(data, facts, analyse)
    return facts


def describe(data: bytes, facts: ImageFacts, analyse: bool = True) -> None:
    """Fill `facts` from a file's bytes; a decoder failure becomes `facts.error`."""
    try:
        _describe(data, facts, analyse)
    except Exception as exc:  # any decoder failure is a fact about the file, not a crash
        facts.error = facts.error or f"cannot decode: {type(exc).__name__}: {exc}"


def _describe(data: bytes, facts: ImageFacts, analyse: bool) -> None:
    if not data:
        facts.error = "empty file"
        return
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        facts.error = "not an image"
        return
    with img:
        facts.format = img.format
        if img.width * img.height > MAX_PIXELS:
            facts.error = f"too many pixels ({img.width}x{img.height})"
            return
        exif = img.getexif()
        facts.orientation = int(exif.get(TAG_ORIENTATION, 1) or 1)
        stamp = exif.get_ifd(EXIF_IFD).get(TAG_DATETIME_ORIGINAL) or exif.get(TAG_DATETIME)
        facts.taken = _exif_time(stamp)
        w, h = img.size
        facts.width, facts.height = (h, w) if facts.orientation in (5, 6, 7, 8) else (w, h)
        if not analyse:
            facts.error = structural_problem(data, img.format)
            return
        if img.format == "JPEG":
            img.draft("L", (SCORE_SIDE, SCORE_SIDE))  # DCT-domain downscale: decodes a fraction
        img.load()  # raises on truncated data
        grey = ImageOps.exif_transpose(img).convert("L")
    scores(grey, facts)


def structural_problem(data: bytes, fmt: str | None) -> str | None:
    """A cheap integrity check without decoding pixels: a JPEG must end with its EOI marker
    (cameras may pad after it), a PNG's chunk checksums must hold."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        return "cannot decode: truncated JPEG (no end-of-image marker)"
    if fmt == "PNG":
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Exception as exc:
            return f"cannot decode: {type(exc).__name__}: {exc}"
    return None


def _exif_time(stamp: object) -> str | None:
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def scores(grey: Image.Image, facts: ImageFacts) -> None:
    small = grey.copy()
    small.thumbnail((SCORE_SIDE, SCORE_SIDE), Image.BILINEAR)
    a = np.asarray(small, dtype=np.float32)
    facts.brightness = float(a.mean())
    facts.contrast = float(a.std())
    # Normalised to a standard contrast first, so a dark or flat photo does not pass for blurry.
    a = (a - facts.brightness) * (STANDARD_CONTRAST / max(facts.contrast, 1.0))
    lap = a[1:-1, 1:-1] * -4 + a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]
    facts.sharpness = float(lap.var()) if lap.size else 0.0
    facts.phash = phash(small)


@functools.lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> np.ndarray:
    """DCT-II basis (unnormalised; only signs against the median matter)."""
    k = np.arange(n)[:, None]
    return np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))


def phash(grey: Image.Image) -> int:
    """64-bit perceptual hash: signs of the 8x8 lowest DCT frequencies against their median."""
    a = np.asarray(grey.resize((32, 32), Image.BILINEAR), dtype=np.float64)
    d = _dct_matrix()
    low = (d @ a @ d.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value  # signed: SQLite INTEGER is 64-bit signed
