"""COCO keypoints JSON (person-keypoints style): one category, `bear_face`, whose keypoints are
the five landmarks with their skeleton; each face one annotation (bbox [x, y, w, h] in pixels,
keypoints [x, y, v] x 5 with v = 2 placed and 0 missing); the bear ID, ignore, cub, the flags
and every other attribute in the annotation's `attributes` (as CVAT's COCO export keeps them);
photos by relative `file_name`. pycocotools loads it (tests/test_labels_formats.py)."""

from __future__ import annotations

import json
from pathlib import Path

from bearid.fsio import atomic_write_text
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


def write(labels: LabelSet, out: Path) -> None:
    images, annotations = [], []
    for image_id, photo in enumerate(labels.photos, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": photo.file,
                "width": photo.width,
                "height": photo.height,
                "bearid_base": photo.base,
            }
        )
        for face in photo.faces:
            keypoints: list[float] = []
            for name in SKELETON:
                x, y = face.points.get(name, (0, 0))
                keypoints += [x, y, 2 if name in face.points else 0]
            attributes = {"bear_id": face.bear_id or "", **{f: getattr(face, f) for f in FLAGS}, **face.attrs}
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [face.left, face.top, face.width, face.height],
                    "area": face.width * face.height,
                    "iscrowd": 0,
                    "keypoints": keypoints,
                    "num_keypoints": len(face.points),
                    "attributes": attributes,
                }
            )
    category = {
        "id": 1,
        "name": FACE,
        "supercategory": "bear",
        "keypoints": list(SKELETON),
        "skeleton": [[a + 1, b + 1] for a, b in EDGES],  # COCO numbers keypoints from 1
    }
    document = {
        "info": {"description": "BearID faces", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
    atomic_write_text(out, json.dumps(document, indent=1))


def read(path: Path) -> LabelSet:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        images, annotations, categories = data["images"], data.get("annotations", []), data["categories"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelsError(f"{path}: not a COCO JSON file ({exc})") from None
    labels = LabelSet()
    faces_cat = {c.get("id"): c for c in categories if isinstance(c, dict) and c.get("name") == FACE}
    if not faces_cat:
        raise LabelsError(
            f"{path}: no category named {FACE!r} (the faces); categories: {[c.get('name') for c in categories]}"
        )
    names_of = {cid: list(c.get("keypoints") or []) for cid, c in faces_cat.items()}
    photos: dict[object, PhotoRecord] = {}
    for n, image in enumerate(images):
        try:
            photos[image["id"]] = PhotoRecord(
                str(image["file_name"]),
                int(image["width"]),
                int(image["height"]),
                base=image.get("bearid_base"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelsError(f"{path}: image {n} needs id, file_name, width and height ({exc})") from None
    for n, ann in enumerate(annotations):
        where = f"{path}: annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
        if not isinstance(ann, dict) or ann.get("image_id") not in photos:
            raise LabelsError(f"{where}: its image_id names no image")
        if ann.get("category_id") not in faces_cat:
            labels.drop("annotations of other categories than bear_face")
            continue
        if ann.get("segmentation"):
            labels.drop("segmentations (imglab holds boxes)")
        photos[ann["image_id"]].faces.append(_face(ann, names_of[ann["category_id"]], where, labels))
    labels.photos = list(photos.values())
    return labels


def _face(ann: dict, names: list[str], where: str, labels: LabelSet) -> FaceRecord:
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise LabelsError(f"{where}: bbox must be [x, y, width, height]")
    left, top, width, height = (finite(v, f"{where} bbox") for v in bbox)
    points = {}
    kp = ann.get("keypoints") or []
    if len(kp) != 3 * len(names):
        raise LabelsError(f"{where}: {len(kp)} keypoint numbers for {len(names)} keypoints (x, y, v each)")
    for k, name in enumerate(names):
        x, y, v = (finite(kp[3 * k + j], f"{where} keypoint {name}") for j in range(3))
        if v > 0:
            if name in SKELETON:
                points[name] = (x, y)
            else:
                labels.drop(f"keypoint {name!r} (not one of the five)")
    if not isinstance(ann.get("attributes") or {}, dict):
        raise LabelsError(f"{where}: attributes must be an object")
    attributes = dict(ann.get("attributes") or {})
    flags = {f: as_flag(attributes.pop(f, False), f"{where} {f}") for f in FLAGS}
    bear = attributes.pop("bear_id", None)
    if bear is not None and not isinstance(bear, str):
        raise LabelsError(f"{where}: bear_id must be text")
    return FaceRecord(left, top, width, height, bear or None, points, attrs=text_attrs(attributes, where), **flags)
