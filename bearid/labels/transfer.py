"""Export an imglab XML to a format, and import a file of that format back into the XML.

An export is read back as soon as it is written and compared with the XML, face by face: what
differs is what the format did not carry, and the report says it (a round trip that loses
nothing says nothing). Each exported photo carries the hash of its boxes as they were.

An import goes through the label store (bearid.label.store): every photo it changes is one
journalled, versioned edit of one operation, which `bearid ids undo XML OPERATION` reverts.
A photo whose boxes changed in the XML since the export (its hash is not the one the file
carries) is a conflict: reported, left as the XML has it. A file that carries no hashes (a
task made in the tool itself) takes `--base` (the file the export wrote) for them, or
`--replace`, which takes the file's boxes over photos that have some: still one undoable
operation. Nothing is written until the whole file has been read and checked.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from bearid.label.boxes import BadEdit, box_from_json, box_to_json
from bearid.labels import coco, cvat, fiftyone, labelstudio
from bearid.labels.records import LabelsError, LabelSet, box_of, boxes_hash, face_of, from_dataset
from bearid.metadata import Box, read_faces

FORMATS: dict[str, ModuleType] = {
    "coco-keypoints": coco,
    "cvat": cvat,
    "labelstudio": labelstudio,
    "fiftyone": fiftyone,
}


def _module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise LabelsError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


@dataclass
class ExportReport:
    out: Path
    photos: int
    faces: int
    dropped: dict[str, int] = field(default_factory=dict)  # what the format did not carry -> faces
    also: list[Path] = field(default_factory=list)  # files written beside (Label Studio's labelling config)


@dataclass
class ImportReport:
    op: dict | None  # the operation (its id undoes it), None if nothing changed
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)  # "file: why", left as the XML has them
    not_in_xml: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def read_labels(path: Path, fmt: str) -> LabelSet:
    """A labels file of `fmt`, read into records (LabelsError if it is not one)."""
    path = Path(path)
    if not path.exists():
        raise LabelsError(f"{path}: no such file")
    return _module(fmt).read(path)


def differences(before: list[Box], after: list[Box], file: str = "") -> Counter:
    """What of `before` a format's round trip did not bring back, by kind. A cub is a cub by
    its folder (`bf_051_cub/`) or its `cub` attribute: the two are compared as one."""
    found: Counter = Counter()
    if len(before) != len(after):
        found["faces"] += abs(len(before) - len(after))
    for a, b in zip(before, after):
        if (a.left, a.top, a.width, a.height) != (b.left, b.top, b.width, b.height):
            found["box geometry"] += 1
        if a.label != b.label:
            found["bear IDs"] += 1
        for name in set(a.parts) | set(b.parts):
            if a.parts.get(name) != b.parts.get(name):
                found[f"landmark {name}"] += 1
        for flag in ("ignore", "difficult", "truncated", "occluded"):
            if getattr(a, flag) != getattr(b, flag):
                found[f"flag {flag}"] += 1
        if face_of(a, file).cub != face_of(b, file).cub:
            found["cub"] += 1
        for key in (set(a.attrs) | set(b.attrs)) - {"cub"}:
            if a.attrs.get(key) != b.attrs.get(key):
                found[f"attribute {key}"] += 1
    return found


def export_labels(xml: Path, fmt: str, out: Path, root: Path | None = None) -> ExportReport:
    """Write the faces of `xml` as `fmt` to `out`, photos named relative to `root` (default:
    the XML's folder); then read it back and say what did not survive."""
    module = _module(fmt)
    xml, out = Path(xml), Path(out)
    dataset = read_faces(xml)
    root = Path(root) if root is not None else xml.parent
    labels = from_dataset(dataset, root)
    module.write(labels, out)
    also = []
    if module is labelstudio:
        config = out.with_name(out.stem + ".label_config.xml")
        from bearid.fsio import atomic_write_text

        atomic_write_text(config, labelstudio.label_config())
        also.append(config)
    back = {p.file: p for p in module.read(out).photos}
    dropped: Counter = Counter()
    for image, photo in zip(dataset.images, labels.photos):
        again = back.get(photo.file)
        if again is None:
            dropped["photos"] += 1
            continue
        dropped += differences(image.boxes, [box_of(f, photo.file) for f in again.faces], photo.file)
    faces = sum(len(p.faces) for p in labels.photos)
    return ExportReport(out, len(labels.photos), faces, dict(dropped), also)


def import_labels(
    source: Path,
    fmt: str,
    into: Path | None = None,
    who: str = "",
    root: Path | None = None,
    base: Path | None = None,
    replace: bool = False,
    store=None,
) -> ImportReport:
    """Take the faces of `source` (`fmt`) into the XML `into` (or the open label `store`), as
    one undoable operation by `who`. Photos are matched by path (relative to `root`, default
    the XML's folder); photos the XML lacks are listed, never added."""
    from bearid.label.store import LabelStore, check_volunteer, new_op_id

    who = check_volunteer(who)
    labels = read_labels(source, fmt)
    bases = {p.file: p.base for p in read_labels(base, fmt).photos} if base is not None else {}
    own = store is None
    if own:
        if into is None or not Path(into).is_file():
            raise LabelsError(f"{into}: no such XML file to import into")
        store = LabelStore(Path(into))
    try:
        return _import(store, labels, fmt, Path(source), who, root, bases, replace, new_op_id())
    finally:
        if own:
            store.close()


def _import(store, labels: LabelSet, fmt, source: Path, who, root, bases, replace, op_id) -> ImportReport:
    root = Path(root) if root is not None else store.xml.parent
    by_path = {os.path.normpath(store.path_of(i).resolve()): i for i in range(len(store))}
    report = ImportReport(None, dropped=dict(labels.dropped))
    plan: list[tuple[int, list[dict], str]] = []
    rounded: Counter = Counter()
    with store.lock:
        seen: set[int] = set()
        for photo in labels.photos:
            i = by_path.get(os.path.normpath((root / photo.file).resolve()))
            if i is None:
                report.not_in_xml.append(photo.file)
                continue
            if i in seen:
                raise LabelsError(f"{source}: photo {photo.file} is given twice")
            seen.add(i)
            try:
                new = [
                    box_to_json(box_from_json(box_to_json(box_of(f, photo.file, rounded)), n))
                    for n, f in enumerate(photo.faces)
                ]
                store.check_inside(i, new)
            except BadEdit as exc:
                raise LabelsError(f"{source}: {photo.file}: {exc}") from None
            current = store.dataset.images[i].boxes
            if new == store.boxes(i):
                report.unchanged += 1
                continue
            was = photo.base or bases.get(photo.file)
            if was is not None and was != boxes_hash(current):
                report.conflicts.append(f"{photo.file}: changed in the XML since the export; left as the XML has it")
                continue
            if was is None and current and not replace:
                report.conflicts.append(
                    f"{photo.file}: the file does not say what the photo held when it was exported (give --base "
                    "EXPORTED_FILE, or --replace to take the file's faces over the XML's)"
                )
                continue
            plan.append((i, new, photo.file))
        report.dropped.update({k: report.dropped.get(k, 0) + v for k, v in rounded.items()})
        if plan:
            op = {
                "kind": "import",
                "id": op_id,
                "format": fmt,
                "source": source.name,
                "photos": len(plan),
                "faces": sum(len(new) for _, new, _ in plan),
            }
            for i, new, file in plan:
                store.update(i, new, store.versions[i], who, {"op": op})
                report.changed.append(file)
            report.op = op
    return report
