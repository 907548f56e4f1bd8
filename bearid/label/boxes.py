"""Face boxes as the page sends and receives them (JSON), checked on the way in: whatever a
client sends must fit imglab XML as data, never become markup, and never make the file
unreadable to BearID or dlib."""

from __future__ import annotations

import math
import re

from bearid.errors import BearIDError
from bearid.metadata import Box
from bearid.metadata._xml import NOT_XML_TEXT, Unwritable, checked_name
from bearid.metadata.faces import BOX_FLAGS

# dlib does not unescape attribute or text values: keep XML's special characters out.
LABEL = re.compile(r"^[^&<>'\"]{1,64}$")
PART_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")
GEOMETRY = ("left", "top", "width", "height")  # a box's own attributes: not extra ones
MAX_ATTRS, MAX_VALUE = 32, 1024


class BadEdit(BearIDError):
    """An edit the page sent that cannot be saved as imglab XML."""


def box_to_json(box: Box) -> dict:
    return {
        "left": box.left,
        "top": box.top,
        "width": box.width,
        "height": box.height,
        "label": box.label,
        "parts": {name: [x, y] for name, (x, y) in sorted(box.parts.items())},
        **{flag: getattr(box, flag) for flag in BOX_FLAGS},
        "attrs": dict(box.attrs),
    }


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadEdit(f"{what} must be a number, got {value!r}")
    return round(value)


def box_from_json(data: dict, n: int) -> Box:
    """A Box from the page's JSON for box number `n`; BadEdit names what is wrong."""
    if not isinstance(data, dict):
        raise BadEdit(f"box {n}: expected an object, got {type(data).__name__}")
    where = f"box {n}"
    left, top, width, height = (_int(data.get(k), f"{where} {k}") for k in ("left", "top", "width", "height"))
    if width <= 0 or height <= 0:
        raise BadEdit(f"{where}: width and height must be positive, got {width} x {height}")
    label = data.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise BadEdit(f"{where}: the label must be text")
        label = label.strip() or None
        if label and NOT_XML_TEXT.search(label):
            raise BadEdit(f"{where}: the label holds a control character or a lone surrogate")
        if label and not LABEL.match(label):
            raise BadEdit(f"{where}: label {label!r} must be 1-64 characters without & < > ' or \"")
    parts = {}
    if not isinstance(data.get("parts") or {}, dict):
        raise BadEdit(f"{where}: landmarks must be an object of name: [x, y]")
    for name, point in (data.get("parts") or {}).items():
        if not PART_NAME.match(str(name)) or not isinstance(point, (list, tuple)) or len(point) != 2:
            raise BadEdit(f"{where}: landmark {name!r} must be a name and [x, y]")
        parts[name] = (_int(point[0], f"{where} {name} x"), _int(point[1], f"{where} {name} y"))
    attrs = data.get("attrs") or {}
    if not isinstance(attrs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
        raise BadEdit(f"{where}: attributes must be text")
    if len(attrs) > MAX_ATTRS:
        raise BadEdit(f"{where}: at most {MAX_ATTRS} attributes")
    for k, v in attrs.items():
        try:
            checked_name(k)
        except Unwritable as exc:
            raise BadEdit(f"{where}: {exc}") from None
        if k in GEOMETRY or k in BOX_FLAGS:
            raise BadEdit(f"{where}: attribute {k!r} is the box's own; send it as a field")
        if NOT_XML_TEXT.search(v) or len(v) > MAX_VALUE:
            raise BadEdit(f"{where}: attribute {k!r} holds a control character or a lone surrogate, or is too long")
    flags = {flag: bool(data.get(flag, False)) for flag in BOX_FLAGS}
    return Box(left, top, width, height, label, parts, attrs=dict(attrs), **flags)
