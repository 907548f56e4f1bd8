"""FiftyOne's own dataset format (`fo.types.FiftyOneDataset`): a folder with `metadata.json`
(media type, the sample fields, the five-point `default_skeleton`) and `samples.json`
(`{"samples": [...]}`). Each sample is a photo (`filepath` relative: load it with
`fo.Dataset.from_dir(OUT, dataset_type=fo.types.FiftyOneDataset, rel_dir=ROOT)`), its faces in
the `faces` field (`Detections`: `bounding_box` [x, y, w, h] relative to the photo, the bear
ID, flags and attributes as the detection's own fields) and their landmarks in `landmarks`
(`Keypoints`: five points in skeleton order, relative, NaN where missing), a face and its
landmarks sharing `index`. FiftyOne is not installed to write or read it (it brings a
database server); the layout is the one its documentation gives."""

from __future__ import annotations

import json
import math
import secrets
from pathlib import Path

from bearid.fsio import atomic_write_text, make_dirs
from bearid.labels.records import (
    EDGES,
    FACE,
    FLAGS,
    SKELETON,
    FaceRecord,
    LabelsError,
    LabelSet,
    PhotoRecord,
    as_flag,
    finite,
    text_attrs,
)

_OWN = ("_id", "_cls", "attributes", "tags", "label", "bounding_box", "mask", "confidence", "index")
_FIELDS = {
    "faces": "fiftyone.core.labels.Detections",
    "landmarks": "fiftyone.core.labels.Keypoints",
}


def _oid() -> dict:
    return {"$oid": secrets.token_hex(12)}


def write(labels: LabelSet, out: Path) -> None:
    """`out` is the dataset's folder (made if missing)."""
    make_dirs(out)
    samples = []
    for photo in labels.photos:
        w, h = photo.width, photo.height
        detections, keypoints = [], []
        for n, face in enumerate(photo.faces):
            detection = {
                "_id": _oid(),
                "_cls": "Detection",
                "attributes": {},
                "tags": [],
                "label": FACE,
                "bounding_box": [face.left / w, face.top / h, face.width / w, face.height / h],
                "index": n,
                "bear_id": face.bear_id,
                **{f: getattr(face, f) for f in FLAGS},
                **face.attrs,
            }
            detections.append(detection)
            points = [
                [face.points[name][0] / w, face.points[name][1] / h] if name in face.points else [math.nan, math.nan]
                for name in SKELETON
            ]
            keypoints.append(
                {
                    "_id": _oid(),
                    "_cls": "Keypoint",
                    "attributes": {},
                    "tags": [],
                    "label": FACE,
                    "points": points,
                    "index": n,
                }
            )
        samples.append(
            {
                "_id": _oid(),
                "filepath": photo.file,
                "tags": [],
                "metadata": {"_cls": "ImageMetadata", "width": w, "height": h},
                "bearid_base": photo.base,
                "faces": {"_id": _oid(), "_cls": "Detections", "detections": detections},
                "landmarks": {"_id": _oid(), "_cls": "Keypoints", "keypoints": keypoints},
            }
        )
    metadata = {
        "name": "bearid-faces",
        "media_type": "image",
        "sample_collection_name": "samples.bearid-faces",
        "sample_fields": [
            {"name": name, "ftype": "fiftyone.core.fields.EmbeddedDocumentField", "embedded_doc_type": doc}
            for name, doc in _FIELDS.items()
        ],
        "info": {"description": "BearID faces"},
        "default_skeleton": {"labels": list(SKELETON), "edges": [list(e) for e in EDGES]},
    }
    atomic_write_text(out / "metadata.json", json.dumps(metadata, indent=1))
    atomic_write_text(out / "samples.json", json.dumps({"samples": samples}, indent=1))  # NaN, as FiftyOne writes it


def read(path: Path) -> LabelSet:
    path = Path(path)
    samples_file = path / "samples.json" if path.is_dir() else path
    try:
        samples = json.loads(samples_file.read_text(encoding="utf-8"))["samples"]
        metadata = json.loads((samples_file.parent / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelsError(f"{path}: not a FiftyOne dataset folder (metadata.json, samples.json): {exc}") from None
    if metadata.get("media_type", "image") != "image":
        raise LabelsError(f"{path}: a FiftyOne dataset of {metadata.get('media_type')}, not images")
    skeleton = (metadata.get("default_skeleton") or {}).get("labels") or list(SKELETON)
    labels = LabelSet()
    for n, sample in enumerate(samples):
        where = f"{path}: sample {n}"
        try:
            file, meta = str(sample["filepath"]), sample.get("metadata") or {}
            photo = PhotoRecord(file, int(meta["width"]), int(meta["height"]), base=sample.get("bearid_base"))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelsError(f"{where}: needs filepath and metadata width and height ({exc})") from None
        for key, value in sample.items():
            if isinstance(value, dict) and value.get("_cls") and key not in ("faces", "landmarks", "metadata"):
                labels.drop(f"sample fields other than faces and landmarks ({key})")
        by_index: dict[object, FaceRecord] = {}
        for d in (sample.get("faces") or {}).get("detections") or []:
            if d.get("label") != FACE:
                labels.drop("detections labelled other than bear_face")
                continue
            face = _face(d, photo, where)
            photo.faces.append(face)
            by_index[d.get("index", len(by_index))] = face
        for k in (sample.get("landmarks") or {}).get("keypoints") or []:
            face = by_index.get(k.get("index"))
            if face is None:
                labels.drop("landmarks of no face (no detection with their index)")
                continue
            for name, point in zip(skeleton, k.get("points") or []):
                if name not in SKELETON:
                    labels.drop(f"keypoint {name!r} (not one of the five)")
                    continue
                x, y = point
                if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                    continue
                face.points[name] = (
                    finite(x, f"{where} {name}") * photo.width,
                    finite(y, f"{where} {name}") * photo.height,
                )
        labels.photos.append(photo)
    return labels


def _face(d: dict, photo: PhotoRecord, where: str) -> FaceRecord:
    box = d.get("bounding_box")
    if not isinstance(box, list) or len(box) != 4:
        raise LabelsError(f"{where}: a detection's bounding_box is [x, y, w, h]")
    x, y, bw, bh = (finite(v, f"{where} bounding_box") for v in box)
    rest = {k: v for k, v in d.items() if k not in _OWN}
    flags = {f: as_flag(rest.pop(f, False), f"{where} {f}") for f in FLAGS}
    bear = rest.pop("bear_id", None)
    if bear is not None and not isinstance(bear, str):
        raise LabelsError(f"{where}: bear_id must be text")
    attrs = text_attrs(rest, where)
    return FaceRecord(
        x * photo.width, y * photo.height, bw * photo.width, bh * photo.height, bear or None, attrs=attrs, **flags
    )
