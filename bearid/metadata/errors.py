"""Errors and validation findings for metadata files, each naming the file and the image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bearid.errors import BearIDError


class MetadataError(BearIDError, ValueError):
    """A metadata file that cannot be read: malformed XML or an unusable value."""

    def __init__(self, path: Path | str, message: str, image: str | None = None):
        self.path = Path(path)
        self.image = image
        self.reason = message
        where = f"{self.path}" + (f" (image {image})" if image else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Finding:
    """One problem found by validation: readable, but not fit for every stage."""

    severity: str  # "error" (a stage cannot use this face) or "warning"
    code: str  # stable reason code, e.g. "missing_landmarks"
    message: str
    image: str | None = None
    box: int | None = None  # index of the box within its image
    path: Path | None = None  # the XML file

    def __str__(self) -> str:
        where = [str(self.path)] if self.path else []
        if self.image is not None:
            where.append(f"image {self.image}")
        if self.box is not None:
            where.append(f"box {self.box}")
        return f"{self.severity}: {': '.join(where)}: {self.message} [{self.code}]"
