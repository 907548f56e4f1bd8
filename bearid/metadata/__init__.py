"""BearID metadata: dlib imglab faces XML and chips XML, read, written and validated.

One implementation, shared by every stage, the service and the labeling tool.
"""

from bearid.metadata.chips import Chip, ChipSet, ChipSource, read_chips, write_chips
from bearid.metadata.errors import Finding, MetadataError
from bearid.metadata.faces import (
    BOX_FLAGS,
    HEAD_TOP,
    KNOWN_PARTS,
    LANDMARKS,
    Box,
    Dataset,
    ImageEntry,
    Point,
    read_faces,
    relative_file,
    validate,
    write_faces,
)

__all__ = [
    "BOX_FLAGS",
    "HEAD_TOP",
    "KNOWN_PARTS",
    "LANDMARKS",
    "Box",
    "Chip",
    "ChipSet",
    "ChipSource",
    "Dataset",
    "Finding",
    "ImageEntry",
    "MetadataError",
    "Point",
    "read_chips",
    "read_faces",
    "relative_file",
    "validate",
    "write_chips",
    "write_faces",
]
