"""Label Studio JSON tasks: one task per photo (`data.image`, a local-files URL of the photo's
relative path; `data.bearid_file` the path itself), its faces in one annotation's `result`.
Each face is a `rectanglelabels` region (`bear_face`, x/y/width/height in percent of the
photo, as Label Studio keeps them) with per-region results of the same id: the bear ID
(`textarea` bear_id), the flags (`choices` flags: ignore, cub, difficult, truncated,
occluded) and the other attributes (`textarea` attrs, one `name=value` a line). Each landmark
is a `keypointlabels` region labelled with its name, tied to its face by `parentID` and a
relation; a landmark placed in Label Studio without either belongs to the face box it falls
in. `label_config()` is the project's labelling config that matches."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from bearid.fsio import atomic_write_text
from bearid.labels.records import FACE, FLAGS, SKELETON, FaceRecord, LabelsError, LabelSet, PhotoRecord, finite

LOCAL_FILES = "/data/local-files/?d="  # Label Studio's local storage URL of a file under its document root
IMAGE = "image"


def label_config() -> str:
    """The labelling config of a Label Studio project these tasks fit."""
    points = "".join(f'<Label value="{name}"/>' for name in SKELETON)
    flags = "".join(f'<Choice value="{name}"/>' for name in FLAGS)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="face" toName="{IMAGE}"><Label value="{FACE}"/></RectangleLabels>\n'
        f'  <KeyPointLabels name="landmark" toName="{IMAGE}" strokeWidth="2">{points}</KeyPointLabels>\n'
        f'  <TextArea name="bear_id" toName="{IMAGE}" perRegion="true" maxSubmissions="1" editable="true"/>\n'
        f'  <Choices name="flags" toName="{IMAGE}" perRegion="true" choice="multiple">{flags}</Choices>\n'
        f'  <TextArea name="attrs" toName="{IMAGE}" perRegion="true" editable="true"/>\n'
        "</View>\n"
    )


def _pct(value: float, whole: int) -> float:
    return value * 100.0 / whole


def _px(value: float, whole: int) -> float:
    return value * whole / 100.0


def write(labels: LabelSet, out: Path, url_prefix: str = LOCAL_FILES) -> None:
    tasks = []
    for photo in labels.photos:
        w, h = photo.width, photo.height
        result: list[dict] = []
        for n, face in enumerate(photo.faces):
            fid = f"face{n}"
            common = {"to_name": IMAGE, "original_width": w, "original_height": h, "image_rotation": 0}
            geometry = {
                "x": _pct(face.left, w),
                "y": _pct(face.top, h),
                "width": _pct(face.width, w),
                "height": _pct(face.height, h),
                "rotation": 0,
            }
            result.append(
                {
                    "id": fid,
                    "type": "rectanglelabels",
                    "from_name": "face",
                    **common,
                    "value": {**geometry, "rectanglelabels": [FACE]},
                }
            )
            if face.bear_id:
                result.append(
                    {
                        "id": fid,
                        "type": "textarea",
                        "from_name": "bear_id",
                        **common,
                        "value": {**geometry, "text": [face.bear_id]},
                    }
                )
            chosen = [f for f in FLAGS if getattr(face, f)]
            if chosen:
                result.append(
                    {
                        "id": fid,
                        "type": "choices",
                        "from_name": "flags",
                        **common,
                        "value": {**geometry, "choices": chosen},
                    }
                )
            if face.attrs:
                lines = [f"{k}={v}" for k, v in face.attrs.items()]
                result.append(
                    {
                        "id": fid,
                        "type": "textarea",
                        "from_name": "attrs",
                        **common,
                        "value": {**geometry, "text": lines},
                    }
                )
            for name in SKELETON:
                if name in face.points:
                    x, y = face.points[name]
                    pid = f"{fid}-{name}"
                    result.append(
                        {
                            "id": pid,
                            "type": "keypointlabels",
                            "from_name": "landmark",
                            **common,
                            "parentID": fid,
                            "value": {"x": _pct(x, w), "y": _pct(y, h), "width": 0.5, "keypointlabels": [name]},
                        }
                    )
                    result.append({"type": "relation", "from_id": pid, "to_id": fid, "direction": "right"})
        tasks.append(
            {
                "data": {
                    IMAGE: url_prefix + photo.file,
                    "bearid_file": photo.file,
                    "bearid_width": w,
                    "bearid_height": h,
                    "bearid_base": photo.base,
                },
                "annotations": [{"result": result, "ground_truth": False}],
            }
        )
    atomic_write_text(out, json.dumps(tasks, indent=1))


def read(path: Path) -> LabelSet:
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelsError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelsError(f"{path}: a Label Studio JSON export is a list of tasks")
    labels = LabelSet()
    for n, task in enumerate(tasks):
        where = f"{path}: task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelsError(f"{where}: a task is an object with 'data'")
        labels.photos.append(_task(task, where, labels))
    return labels


def _file_of(data: dict, where: str) -> str:
    if isinstance(data.get("bearid_file"), str):
        return data["bearid_file"]
    url = data.get(IMAGE)
    if not isinstance(url, str):
        raise LabelsError(f"{where}: data.{IMAGE} is not a photo's URL")
    if "?d=" in url:
        return unquote(url.split("?d=", 1)[1])
    return unquote(url)


def _task(task: dict, where: str, labels: LabelSet) -> PhotoRecord:
    data = task["data"]
    file = _file_of(data, where)
    chosen = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if len(chosen) > 1:
        labels.drop("older annotations of a task (the latest is taken)", len(chosen) - 1)
        chosen.sort(key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    result = chosen[-1].get("result") or [] if chosen else []
    if not isinstance(result, list):
        raise LabelsError(f"{where}: an annotation's result is a list")
    size = next(((r.get("original_width"), r.get("original_height")) for r in result if "original_width" in r), None)
    if size is None and "bearid_width" in data:
        size = (data.get("bearid_width"), data.get("bearid_height"))
    if size is None and not result:
        size = (1, 1)  # no regions: the size is never used
    try:
        w, h = int(size[0]), int(size[1])
    except (TypeError, ValueError):
        raise LabelsError(f"{where}: its results do not say the photo's original_width and original_height") from None
    photo = PhotoRecord(file, w, h, base=data.get("bearid_base"))
    faces: dict[str, FaceRecord] = {}
    keypoints, extras, parents = [], [], {}
    for r in result:
        if not isinstance(r, dict):
            raise LabelsError(f"{where}: a result is an object")
        kind, value = r.get("type"), r.get("value") or {}
        if kind == "relation":
            parents.setdefault(r.get("from_id"), r.get("to_id"))
        elif kind == "rectanglelabels" and FACE in (value.get("rectanglelabels") or []):
            if float(value.get("rotation") or 0):
                raise LabelsError(f"{where}: a rotated box; imglab boxes are upright")
            x, y, bw, bh = (finite(value.get(k), f"{where} face {k}") for k in ("x", "y", "width", "height"))
            faces[r.get("id")] = face = FaceRecord(_px(x, w), _px(y, h), _px(bw, w), _px(bh, h))
            photo.faces.append(face)
        elif kind == "keypointlabels" and set(value.get("keypointlabels") or []) & set(SKELETON):
            keypoints.append(r)
        elif kind in ("textarea", "choices") and r.get("from_name") in ("bear_id", "flags", "attrs"):
            extras.append(r)
        else:
            labels.drop(f"{kind} results (not bear_face boxes, landmarks or their attributes)")
    for r in extras:
        face = faces.get(r.get("id"))
        if face is None:
            labels.drop("per-region results of no face")
            continue
        _extra(face, r, where)
    for r in keypoints:
        value = r["value"]
        name = next(n for n in value["keypointlabels"] if n in SKELETON)
        x, y = _px(finite(value.get("x"), f"{where} {name} x"), w), _px(finite(value.get("y"), f"{where} {name} y"), h)
        face = faces.get(r.get("parentID")) or faces.get(parents.get(r.get("id"))) or _around(photo.faces, x, y)
        if face is None or name in face.points:
            labels.drop("landmarks in no face (or a second of one name)")
            continue
        face.points[name] = (x, y)
    return photo


def _extra(face: FaceRecord, r: dict, where: str) -> None:
    value, name = r.get("value") or {}, r.get("from_name")
    if name == "flags":
        for flag in value.get("choices") or []:
            if flag not in FLAGS:
                raise LabelsError(f"{where}: flag {flag!r} is not one of {', '.join(FLAGS)}")
            setattr(face, flag, True)
        return
    text = [t for t in value.get("text") or [] if isinstance(t, str)]
    if name == "bear_id":
        face.bear_id = (text[-1].strip() if text else "") or None
        return
    for line in "\n".join(text).splitlines():
        key, sep, val = line.partition("=")
        if not sep or not key.strip():
            raise LabelsError(f"{where}: attribute line {line!r} is not name=value")
        face.attrs[key.strip()] = val


def _around(faces: list[FaceRecord], x: float, y: float) -> FaceRecord | None:
    """The one face box a point falls in (a landmark placed without a link to its face)."""
    inside = [f for f in faces if f.left <= x <= f.left + f.width and f.top <= y <= f.top + f.height]
    return inside[0] if len(inside) == 1 else None
