"""Chips XML: face chips cut from photos, in the style of the original bearchip output.

<dataset><name/><comment/>
<chips>
  <chip file='chip_images/brooks_falls/bf_051/x_chip_0.jpg'>
    <label>bf_051</label>
    <resolution>55932</resolution>          (face box area in source pixels)
    <chip_dimensions>150 150</chip_dimensions>
    <transform_features>reye leye nose</transform_features>
    <part name='leye' x='94' y='72'/> ...   (landmarks in chip pixels)
    <source file='../photos/x.jpg' top='199' left='554' width='237' height='236'/>
  </chip>
</chips></dataset>
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bearid.metadata import _xml
from bearid.metadata.errors import MetadataError
from bearid.metadata.faces import Point


@dataclass
class ChipSource:
    """Where a chip came from: the photo and the face box in it."""

    file: str
    left: int
    top: int
    width: int
    height: int


@dataclass
class Chip:
    file: str
    label: str | None = None
    parts: dict[str, Point] = field(default_factory=dict)
    source: ChipSource | None = None
    width: int | None = None
    height: int | None = None
    transform_features: list[str] = field(default_factory=list)
    resolution: int | None = None
    embedding: list[float] | None = None  # in embeddings XML files


@dataclass
class ChipSet:
    """A chips XML file: relative chip and source paths are relative to `base_dir`."""

    chips: list[Chip] = field(default_factory=list)
    name: str = "bearid chips"
    comment: str = ""
    base_dir: Path = field(default_factory=Path)
    extra: dict[str, str] = field(default_factory=dict)

    def path_of(self, chip: Chip) -> Path:
        return _xml.resolve(chip.file, self.base_dir)

    def source_path_of(self, chip: Chip) -> Path | None:
        return None if chip.source is None else _xml.resolve(chip.source.file, self.base_dir)


def read_chips(path: Path | str) -> ChipSet:
    path = Path(path)
    elements, header = _xml.read_document(path, "chips", "chip")
    return ChipSet(chips=[_read_chip(el, path) for el in elements], **header)


def _read_chip(el, path: Path) -> Chip:
    file = el.get("file")
    if file is None:
        raise MetadataError(path, "<chip> is missing its 'file' attribute")
    width = height = None
    if dims := _xml.text_of(el, "chip_dimensions"):
        try:
            width, height = (int(v) for v in dims.split())
        except ValueError:
            raise MetadataError(path, f"chip_dimensions '{dims}' is not 'WIDTH HEIGHT'", file) from None
    resolution = _xml.text_of(el, "resolution")
    source_el = el.find("source")
    source = None
    if source_el is not None:
        source_file = source_el.get("file")
        if source_file is None:
            raise MetadataError(path, "<source> is missing its 'file' attribute", file)
        geometry = (_xml.int_attr(source_el, name, path, file) for name in ("left", "top", "width", "height"))
        source = ChipSource(source_file, *geometry)  # type: ignore[arg-type]
    try:
        resolution_value = int(resolution) if resolution else None
    except ValueError:
        raise MetadataError(path, f"resolution '{resolution}' is not an integer", file) from None
    embedding = None
    if (raw := _xml.text_of(el, "embedding")) is not None:
        try:
            embedding = [float(v) for v in raw.split()]
        except ValueError:
            raise MetadataError(path, "embedding holds something other than numbers", file) from None
    return Chip(
        file=file,
        label=_xml.text_of(el, "label") or None,
        parts=_xml.read_parts(el, path, file),
        source=source,
        width=width,
        height=height,
        transform_features=(_xml.text_of(el, "transform_features") or "").split(),
        resolution=resolution_value,
        embedding=embedding,
    )


def write_chips(chipset: ChipSet, path: Path | str) -> None:
    """Write `chipset` atomically; relative chip and source paths are rebased onto `path`."""
    path = Path(path)
    lines = _xml.header_lines(chipset.name, chipset.comment, chipset.extra)
    lines.append("<chips>")
    for chip in chipset.chips:
        lines.append(f"  <chip file={_xml.attr(_xml.rebase(chip.file, chipset.base_dir, path.parent))}>")
        if chip.label:
            lines.append(f"    <label>{_xml.text(chip.label)}</label>")
        if chip.resolution is not None:
            lines.append(f"    <resolution>{chip.resolution}</resolution>")
        if chip.width and chip.height:
            lines.append(f"    <chip_dimensions>{chip.width} {chip.height}</chip_dimensions>")
        if chip.transform_features:
            lines.append(f"    <transform_features>{_xml.text(' '.join(chip.transform_features))}</transform_features>")
        lines += _xml.part_lines(chip.parts, "    ")
        if (s := chip.source) is not None:
            source_file = _xml.rebase(s.file, chipset.base_dir, path.parent)
            lines.append(
                f"    <source file={_xml.attr(source_file)} top={_xml.attr(s.top)} left={_xml.attr(s.left)}"
                f" width={_xml.attr(s.width)} height={_xml.attr(s.height)}/>"
            )
        if chip.embedding is not None:
            lines.append(f"    <embedding>{' '.join(f'{v:.6g}' for v in chip.embedding)}</embedding>")
        lines.append("  </chip>")
    lines += ["</chips>", "</dataset>"]
    _xml.write_document(path, lines)
