"""Face metadata in dlib's imglab XML: images, face boxes, labels and landmarks.

The format is the one dlib's `save_image_dataset_metadata` writes and imglab edits, so every
file BearID writes stays loadable by dlib and imglab. Reading keeps everything the file says
(unknown parts, odd flags) so a round trip loses nothing; `validate` says what is unusable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bearid.metadata import _xml
from bearid.metadata.errors import Finding, MetadataError

# The five landmarks, bear's own left first (on a frontal face leye/lear have the larger x).
LANDMARKS: tuple[str, ...] = ("leye", "reye", "nose", "lear", "rear")
HEAD_TOP = "head_top"
KNOWN_PARTS = frozenset(LANDMARKS + (HEAD_TOP,))
# Box flags dlib keeps as booleans, in the order it writes them.
BOX_FLAGS: tuple[str, ...] = ("difficult", "truncated", "occluded", "ignore")
_BOX_GEOMETRY = ("top", "left", "width", "height")

Point = tuple[int, int]


@dataclass
class Box:
    """One face: a rectangle, an optional label (the bear ID) and named landmarks."""

    left: int
    top: int
    width: int
    height: int
    label: str | None = None
    parts: dict[str, Point] = field(default_factory=dict)
    difficult: bool = False
    truncated: bool = False
    occluded: bool = False
    ignore: bool = False
    # Other box attributes (detection_score, pose, angle, age, gender, ...) kept verbatim.
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def missing_landmarks(self) -> list[str]:
        return [name for name in LANDMARKS if name not in self.parts]

    def unknown_parts(self) -> list[str]:
        return sorted(name for name in self.parts if name not in KNOWN_PARTS)


@dataclass
class ImageEntry:
    """One photo and its faces; `file` is as written in the XML (relative or absolute)."""

    file: str
    boxes: list[Box] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Dataset:
    """A faces XML file: relative image paths are relative to `base_dir`."""

    images: list[ImageEntry] = field(default_factory=list)
    name: str = "bearid dataset"
    comment: str = ""
    base_dir: Path = field(default_factory=Path)
    extra: dict[str, str] = field(default_factory=dict)

    def path_of(self, image: ImageEntry) -> Path:
        return _xml.resolve(image.file, self.base_dir)

    def faces(self) -> Iterator[tuple[ImageEntry, Box]]:
        for image in self.images:
            for box in image.boxes:
                yield image, box

    def labels(self) -> list[str]:
        return sorted({box.label for _, box in self.faces() if box.label})


def read_faces(path: Path | str) -> Dataset:
    """Read an imglab XML file (ISO-8859-1 or UTF-8) into a `Dataset`.

    Raises `MetadataError` naming the file (and image) for malformed XML or unusable values.
    """
    path = Path(path)
    elements, header = _xml.read_document(path, "images", "image")
    return Dataset(images=[_read_image(el, path) for el in elements], **header)


def _read_image(el, path: Path) -> ImageEntry:
    file = el.get("file")
    if file is None:
        raise MetadataError(path, "<image> is missing its 'file' attribute")
    width = _xml.int_attr(el, "width", path, file, required=False)
    height = _xml.int_attr(el, "height", path, file, required=False)
    attrs = {k: v for k, v in el.attrib.items() if k not in ("file", "width", "height")}
    boxes = [_read_box(box_el, path, file) for box_el in el.findall("box")]
    return ImageEntry(file=file, boxes=boxes, width=width, height=height, attrs=attrs)


def _read_box(el, path: Path, image: str) -> Box:
    left, top, width, height = (_xml.int_attr(el, name, path, image) for name in ("left", "top", "width", "height"))
    flags = {name: _flag(el.get(name), name, path, image) for name in BOX_FLAGS}
    attrs = {k: v for k, v in el.attrib.items() if k not in _BOX_GEOMETRY and k not in BOX_FLAGS}
    label = _xml.text_of(el, "label")
    return Box(
        left=left,
        top=top,
        width=width,
        height=height,  # type: ignore[arg-type]
        label=label or None,
        parts=_xml.read_parts(el, path, image),
        attrs=attrs,
        **flags,
    )


def _flag(raw: str | None, name: str, path: Path, image: str) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false", ""):
        return False
    raise MetadataError(path, f"box flag {name}='{raw}' is not 0 or 1", image)


def write_faces(dataset: Dataset, path: Path | str) -> None:
    """Write `dataset` as imglab XML, atomically; relative paths are rebased onto `path`.
    What XML cannot hold (an attribute name that is not a plain name, a control character)
    is refused (`Unwritable`) and the file left as it was."""
    _xml.atomic_write_bytes(Path(path), faces_document(dataset, Path(path)))


def faces_document(dataset: Dataset, path: Path) -> bytes:
    """The bytes `write_faces` would write to `path`, checked to parse back."""
    lines = _xml.header_lines(dataset.name, dataset.comment, dataset.extra)
    lines.append("<images>")
    for image in dataset.images:
        file = _xml.rebase(image.file, dataset.base_dir, path.parent)
        head = f"  <image file={_xml.attr(file)}"
        if image.width and image.height:
            head += f" width={_xml.attr(image.width)} height={_xml.attr(image.height)}"
        head += _xml.attrs(image.attrs)
        lines.append(head + ">")
        for box in image.boxes:
            lines += _box_lines(box)
        lines.append("  </image>")
    lines += ["</images>", "</dataset>"]
    return _xml.document(lines)


def _box_lines(box: Box) -> list[str]:
    head = (
        f"    <box top={_xml.attr(box.top)} left={_xml.attr(box.left)}"
        f" width={_xml.attr(box.width)} height={_xml.attr(box.height)}"
    )
    head += "".join(f" {flag}='1'" for flag in BOX_FLAGS if getattr(box, flag))
    head += _xml.attrs(box.attrs)
    if not box.label and not box.parts:
        return [head + "/>"]
    body = [f"      <label>{_xml.text(box.label)}</label>"] if box.label else []
    body += _xml.part_lines(box.parts, "      ")
    return [head + ">", *body, "    </box>"]


def validate(dataset: Dataset, path: Path | None = None) -> list[Finding]:
    """Say what in a readable faces file a stage cannot use, naming image and box."""
    findings: list[Finding] = []

    def add(severity: str, code: str, message: str, image: ImageEntry, box: int | None = None) -> None:
        findings.append(Finding(severity, code, message, image.file, box, path))

    seen: set[str] = set()
    for image in dataset.images:
        if image.file in seen:
            add("warning", "duplicate_image", "image listed more than once", image)
        seen.add(image.file)
        for i, box in enumerate(image.boxes):
            if box.width <= 0 or box.height <= 0:
                add("error", "bad_box_size", f"box size {box.width}x{box.height} is not positive", image, i)
            if unknown := box.unknown_parts():
                add("error", "unknown_part", f"unknown part name(s): {', '.join(unknown)}", image, i)
            if (missing := box.missing_landmarks()) and not box.ignore:
                add("error", "missing_landmarks", f"missing landmark(s): {', '.join(missing)}", image, i)
            if not box.label and not box.ignore:
                add("warning", "missing_label", "box has no label", image, i)
            if image.width and image.height and not _inside(box, image.width, image.height):
                add("warning", "box_outside_image", "box extends past the image", image, i)
    return findings


def _inside(box: Box, width: int, height: int) -> bool:
    return box.left >= 0 and box.top >= 0 and box.right <= width and box.bottom <= height


def relative_file(image_path: Path, base_dir: Path) -> str:
    """How an image is named in an XML file whose relative paths start at `base_dir`."""
    return _xml.relative(image_path, base_dir)
