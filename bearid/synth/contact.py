"""A contact sheet: faces and whole photos with their ground truth drawn, for human eyes.

Photos are read back from disk and turned upright by their EXIF orientation, so the sheet
also shows that the stored files, their orientation tags and the XML agree.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from bearid.fsio import atomic_path
from bearid.metadata import Box, Dataset
from bearid.synth.photo_io import open_displayed

PART_COLOURS = {
    "leye": (255, 60, 60),
    "reye": (60, 255, 60),
    "nose": (255, 255, 0),
    "lear": (255, 120, 255),
    "rear": (60, 200, 255),
    "head_top": (255, 255, 255),
}


def _draw_face(draw: ImageDraw.ImageDraw, box: Box, k: float, dx: float, dy: float, r: float) -> None:
    draw.rectangle(
        ((box.left - dx) * k, (box.top - dy) * k, (box.right - dx) * k, (box.bottom - dy) * k), outline=(255, 230, 0)
    )
    for name, (x, y) in box.parts.items():
        cx, cy = (x - dx) * k, (y - dy) * k
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=PART_COLOURS.get(name, (128, 128, 128)))


def contact_sheet(dataset: Dataset, out: Path, faces: int = 40, photos: int = 6, cell: int = 150) -> Path:
    """Write a PNG: a row of whole photos, then a grid of face crops, each with its truth."""
    per_row = 8
    picked = [(img, box) for img, box in dataset.faces()]
    step = max(1, len(picked) // max(1, faces))
    picked = picked[::step][:faces]
    whole = [img for img in dataset.images if img.boxes][:: max(1, len(dataset.images) // max(1, photos))][:photos]
    photo_w = cell * per_row // max(1, len(whole) or 1)
    rows = (len(picked) + per_row - 1) // per_row
    sheet = Image.new("RGB", (cell * per_row, photo_w + rows * (cell + 14)), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for i, entry in enumerate(whole):
        img = open_displayed(dataset.path_of(entry))
        k = min(photo_w / img.width, photo_w / img.height)
        thumb = img.resize((max(1, int(img.width * k)), max(1, int(img.height * k))))
        tdraw = ImageDraw.Draw(thumb)
        for box in entry.boxes:
            _draw_face(tdraw, box, k, 0, 0, 1.5)
        sheet.paste(thumb, (i * photo_w, 0))
    cache: dict[str, Image.Image] = {}
    for j, (entry, box) in enumerate(picked):
        img = cache.get(entry.file) or cache.setdefault(entry.file, open_displayed(dataset.path_of(entry)))
        pad = 0.3 * box.width
        x0, y0 = box.left - pad, box.top - pad
        side = box.width + 2 * pad
        k = cell / side
        crop = img.crop((int(x0), int(y0), int(x0 + side), int(y0 + side))).resize((cell, cell))
        _draw_face(ImageDraw.Draw(crop), box, k, int(x0), int(y0), 2.5)
        col, row = j % per_row, j // per_row
        y = photo_w + row * (cell + 14)
        sheet.paste(crop, (col * cell, y))
        draw.text((col * cell + 3, y + cell), f"{box.label} {box.width}px", fill=(230, 230, 230))
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, "PNG")
    return out
