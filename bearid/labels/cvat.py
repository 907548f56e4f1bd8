"""CVAT for images 1.1 XML: each face a `bear_face` box with its attributes (bear_id as text;
ignore, cub, difficult, truncated as checkboxes; occluded is the box's own; every other
attribute as text), and each landmark a `points` shape whose label is the landmark's name
(leye, reye, nose, lear, rear), tied to its box by a shared `group_id` (CVAT's group). The
labels and attributes are declared in <meta><task><labels>, so a CVAT task made from this
file (or a project with the same labels) takes it as it is; photos by relative `name`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from bearid.fsio import atomic_write_bytes
from bearid.labels.records import FACE, SKELETON, FaceRecord, LabelsError, LabelSet, PhotoRecord, as_flag, finite

CHECKBOXES = ("ignore", "cub", "difficult", "truncated")
BASES = "bearid_bases"  # a <meta> child: the hash of each photo's boxes at export


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _attribute(parent: ET.Element, name: str, kind: str) -> None:
    el = _sub(parent, "attribute")
    _sub(el, "name", name)
    _sub(el, "mutable", "False")
    _sub(el, "input_type", kind)
    default = "false" if kind == "checkbox" else ""
    _sub(el, "default_value", default)
    _sub(el, "values", default)


def _num(value: float) -> str:
    return f"{value:.2f}"


def write(labels: LabelSet, out: Path) -> None:
    root = ET.Element("annotations")
    _sub(root, "version", "1.1")
    meta = _sub(root, "meta")
    task = _sub(meta, "task")
    _sub(task, "name", "BearID faces")
    _sub(task, "size", str(len(labels.photos)))
    _sub(task, "mode", "annotation")
    label_list = _sub(task, "labels")
    face = _sub(label_list, "label")
    _sub(face, "name", FACE)
    _sub(face, "type", "rectangle")
    attributes = _sub(face, "attributes")
    _attribute(attributes, "bear_id", "text")
    for name in CHECKBOXES:
        _attribute(attributes, name, "checkbox")
    free = sorted({k for p in labels.photos for f in p.faces for k in f.attrs})
    for name in free:
        _attribute(attributes, name, "text")
    for name in SKELETON:
        point = _sub(label_list, "label")
        _sub(point, "name", name)
        _sub(point, "type", "points")
        _sub(point, "attributes")
    bases = _sub(meta, BASES)
    group = 0
    for n, photo in enumerate(labels.photos):
        if photo.base:
            _sub(bases, "photo", name=photo.file, base=photo.base)
        image = _sub(root, "image", id=str(n), name=photo.file, width=str(photo.width), height=str(photo.height))
        for face in photo.faces:
            group += 1
            common = {"source": "manual", "z_order": "0", "group_id": str(group)}
            box = _sub(
                image,
                "box",
                label=FACE,
                occluded="1" if face.occluded else "0",
                xtl=_num(face.left),
                ytl=_num(face.top),
                xbr=_num(face.left + face.width),
                ybr=_num(face.top + face.height),
                **common,
            )
            _sub(box, "attribute", face.bear_id or "", name="bear_id")
            for name in CHECKBOXES:
                _sub(box, "attribute", "true" if getattr(face, name) else "false", name=name)
            for name in free:
                _sub(box, "attribute", face.attrs.get(name, ""), name=name)
            for name in SKELETON:
                if name in face.points:
                    x, y = face.points[name]
                    _sub(image, "points", label=name, occluded="0", points=f"{_num(x)},{_num(y)}", **common)
    ET.indent(root)
    atomic_write_bytes(out, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def read(path: Path) -> LabelSet:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise LabelsError(f"{path}: not a CVAT XML file ({exc})") from None
    if root.tag != "annotations":
        raise LabelsError(f"{path}: root element is <{root.tag}>, expected CVAT's <annotations>")
    version = (root.findtext("version") or "").strip()
    if version and version != "1.1":
        raise LabelsError(f"{path}: CVAT format version {version}; this reads CVAT for images 1.1")
    if root.find("track") is not None:
        raise LabelsError(f"{path}: a CVAT for video file (tracks); export the task as CVAT for images 1.1")
    bases = {p.get("name"): p.get("base") for p in root.iterfind(f"meta/{BASES}/photo")}
    labels = LabelSet()
    for image in root.iterfind("image"):
        try:
            file = image.attrib["name"]
            photo = PhotoRecord(file, int(image.attrib["width"]), int(image.attrib["height"]), base=bases.get(file))
        except (KeyError, ValueError) as exc:
            raise LabelsError(f"{path}: an <image> needs name, width and height ({exc})") from None
        _read_image(image, photo, f"{path}: {file}", labels)
        labels.photos.append(photo)
    return labels


def _read_image(image: ET.Element, photo: PhotoRecord, where: str, labels: LabelSet) -> None:
    by_group: dict[str, FaceRecord] = {}
    points: list[ET.Element] = []
    for shape in image:
        label = shape.get("label")
        if shape.tag == "box" and label == FACE:
            face = _face(shape, where)
            photo.faces.append(face)
            if shape.get("group_id") not in (None, "", "0"):
                by_group[shape.get("group_id")] = face
        elif shape.tag == "points" and label in SKELETON:
            points.append(shape)
        else:
            labels.drop(f"{shape.tag} shapes labelled {label!r} (not bear_face boxes or landmarks)")
    for shape in points:
        face = by_group.get(shape.get("group_id") or "")
        if face is None:
            labels.drop("landmarks in no face's group (group them with their box in CVAT)")
            continue
        coords = [c for c in (shape.get("points") or "").split(";") if c]
        if not coords:
            raise LabelsError(f"{where}: a {shape.get('label')} point without coordinates")
        if len(coords) > 1:
            labels.drop("extra points in one landmark shape (the first is kept)", len(coords) - 1)
        try:
            x, y = (float(v) for v in coords[0].split(","))
        except ValueError:
            raise LabelsError(f"{where}: points={shape.get('points')!r} is not 'x,y'") from None
        name = shape.get("label")
        if name in face.points:
            labels.drop("a landmark given twice for one face (the first is kept)")
            continue
        face.points[name] = (finite(x, f"{where} {name} x"), finite(y, f"{where} {name} y"))


def _face(box: ET.Element, where: str) -> FaceRecord:
    try:
        xtl, ytl, xbr, ybr = (finite(float(box.attrib[k]), f"{where} box {k}") for k in ("xtl", "ytl", "xbr", "ybr"))
    except (KeyError, ValueError) as exc:
        raise LabelsError(f"{where}: a box needs numbers xtl, ytl, xbr, ybr ({exc})") from None
    if float(box.get("rotation") or 0):
        raise LabelsError(f"{where}: a rotated box (rotation={box.get('rotation')}); imglab boxes are upright")
    values = {a.get("name"): (a.text or "").strip() for a in box.iterfind("attribute")}
    flags = {name: as_flag(values.pop(name, "false"), f"{where} {name}") for name in CHECKBOXES}
    bear = values.pop("bear_id", "") or None
    occluded = as_flag(box.get("occluded") or "0", f"{where} occluded")
    attrs = {k: v for k, v in values.items() if k and v != ""}  # CVAT writes "" for a text attribute not set
    return FaceRecord(xtl, ytl, xbr - xtl, ybr - ytl, bear, {}, occluded=occluded, attrs=attrs, **flags)
