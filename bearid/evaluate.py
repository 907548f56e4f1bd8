"""Scoring a pipeline's answers against labelled photos (a faces XML with bear labels).

Used as the promotion gate: a candidate bundle and the champion answer the same photos in
the same run, and the better one serves. A truth face counts as right when a detected face
overlaps it (IoU >= 0.5) and names its bear — or, for a bear the bundle does not know,
says "unknown". A missed face is wrong for its bear.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from bearid.detection import iou
from bearid.errors import BearIDError
from bearid.metadata import Box, read_faces
from bearid.pipeline import Pipeline


def gate_metrics(pipeline: Pipeline, faces_xml: list[Path], limit: int = 0) -> dict:
    """Answer every labelled photo of the faces XML files (at most `limit`) and tally them."""
    def answered():
        n = 0
        for xml in faces_xml:
            dataset = read_faces(xml)
            for image in dataset.images:
                truth = [b for b in image.boxes if b.label and not b.ignore]
                if truth and not (limit and n >= limit):
                    n += 1
                    yield pipeline.identify(dataset.path_of(image)).as_json(), truth
    return tally(answered(), set(pipeline.classifier.ids))  # type: ignore[attr-defined]


def tally(answers: Iterable[tuple[dict, list[Box]]], known_ids: set[str]) -> dict:
    """Face recall, known-bear balanced accuracy (BAKS), unknown-bear balanced accuracy
    (BAUS), their mean (`open_set`) and top-1 of found known bears, from API answers (JSON)
    and the truth boxes of the same photos."""
    right: dict[str, list[bool]] = defaultdict(list)
    photos = truth_faces = found = top1_hits = top1_n = 0
    for answer, truth in answers:
        photos += 1
        for box in truth:
            truth_faces += 1
            face = _match(answer, (box.left, box.top, box.width, box.height))
            if face is None:
                right[box.label].append(False)
                continue
            found += 1
            if box.label in known_ids:
                right[box.label].append(face["bear_id"] == box.label)
                top1_n += 1
                top1_hits += bool(face["candidates"]) and face["candidates"][0]["bear_id"] == box.label
            else:
                right[box.label].append(face["bear_id"] is None)
    if not truth_faces:
        raise BearIDError("no labelled faces to score against")
    known = [sum(v) / len(v) for k, v in right.items() if k in known_ids]
    unknown = [sum(v) / len(v) for k, v in right.items() if k not in known_ids]
    out = {"photos": photos, "faces": truth_faces, "face_recall": round(found / truth_faces, 4),
           "top1": round(top1_hits / top1_n, 4) if top1_n else None,
           "baks": round(sum(known) / len(known), 4) if known else None,
           "baus": round(sum(unknown) / len(unknown), 4) if unknown else None,
           "known_bears": len(known), "unknown_bears": len(unknown)}
    parts = [v for v in (out["baks"], out["baus"]) if v is not None]
    out["open_set"] = round(sum(parts) / len(parts), 4)
    return out


def _match(answer: dict, box: tuple[float, float, float, float]) -> dict | None:
    best, best_iou = None, 0.5
    for face in answer["faces"]:
        b = face["box"]
        overlap = iou((b["left"], b["top"], b["width"], b["height"]), box)
        if overlap >= best_iou:
            best, best_iou = face, overlap
    return best
