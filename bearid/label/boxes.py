"""Face boxes as the page sends and receives them (JSON), checked on the way in."""

from __future__ import annotations

import math
import re

from bearid.errors import BearIDError
from bearid.metadata import Box
from bearid.metadata.faces import BOX_FLAGS

# dlib does not unescape attribute or text values: keep XML's special characters out.
LABEL = re.compile(r"^[^&<>'\"]{1,64}$")
PART_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")


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
        if label and not LABEL.match(label):
            raise BadEdit(f"{where}: label {label!r} must be 1-64 characters without & < > ' or \"")
    parts = {}
    for name, point in (data.get("parts") or {}).items():
        if not PART_NAME.match(str(name)) or not isinstance(point, (list, tuple)) or len(point) != 2:
            raise BadEdit(f"{where}: landmark {name!r} must be a name and [x, y]")
        parts[name] = (_int(point[0], f"{where} {name} x"), _int(point[1], f"{where} {name} y"))
    attrs = data.get("attrs") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
        raise BadEdit(f"{where}: attributes must be text")
    flags = {flag: bool(data.get(flag, False)) for flag in BOX_FLAGS}
    return Box(left, top, width, height, label, parts, attrs=dict(attrs), **flags)
