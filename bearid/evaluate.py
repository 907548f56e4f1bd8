"""Scoring a pipeline's answers against labelled photos (a faces XML with bear labels).

Used as the promotion gate: a candidate bundle and the champion answer the same photos in
the same run, and the better one serves. A truth face counts as right when a detected face
overlaps it (IoU >= 0.5) and names its bear — or, for a bear the bundle does not know,
says "unknown". A missed face is wrong for its bear.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bearid.errors import BearIDError
from bearid.metadata import Box, read_faces
from bearid.metrics import balanced_accuracy, iou
from bearid.serving.pipeline import Pipeline


def gate_answers(pipeline: Pipeline, faces_xml: list[Path], limit: int = 0) -> list[tuple[dict, list[Box]]]:
    """The pipeline's answer (JSON) and the truth faces of every labelled photo of the faces
    XML files (at most `limit` photos): what `tally` scores, answered once."""
    pairs = []
    for xml in faces_xml:
        dataset = read_faces(xml)
        for image in dataset.images:
            truth = [b for b in image.boxes if b.label and not b.ignore]
            if truth and not (limit and len(pairs) >= limit):
                pairs.append((pipeline.identify(dataset.path_of(image)).model_dump(mode="json"), truth))
    return pairs


def gate_metrics(pipeline: Pipeline, faces_xml: list[Path], limit: int = 0) -> dict:
    """Answer every labelled photo of the faces XML files (at most `limit`) and tally them."""
    return tally(gate_answers(pipeline, faces_xml, limit), set(pipeline.classifier.ids))


def tally(
    answers: Iterable[tuple[dict, list[Box]]], known_ids: set[str], leave_out: frozenset[str] = frozenset()
) -> dict:
    """Face recall, known-bear balanced accuracy (BAKS), unknown-bear balanced accuracy
    (BAUS), their mean (`open_set`) and top-1 of found known bears, from API answers (JSON)
    and the truth boxes of the same photos. Faces of the bears in `leave_out` count for face
    recall only (two models with different rosters are compared on the bears they share)."""
    known_bears: list[str] = []  # per truth face of a known bear: its bear, and was it named
    named: list[bool] = []
    unknown_bears: list[str] = []  # per truth face of a new bear: its bear, and was it turned away
    turned_away: list[bool] = []
    photos = truth_faces = found = top1_hits = top1_n = 0
    for answer, truth in answers:
        photos += 1
        for box in truth:
            truth_faces += 1
            face = _match(answer, (box.left, box.top, box.width, box.height))
            found += face is not None
            if box.label in leave_out:
                continue
            if box.label in known_ids:
                known_bears.append(box.label)
                named.append(face is not None and face["bear_id"] == box.label)
                if face is not None:
                    top1_n += 1
                    top1_hits += bool(face["candidates"]) and face["candidates"][0]["bear_id"] == box.label
            else:
                unknown_bears.append(box.label)
                turned_away.append(face is not None and face["bear_id"] is None)
    if not truth_faces:
        raise BearIDError("no labelled faces to score against")
    out = {
        "photos": photos,
        "faces": truth_faces,
        "face_recall": round(found / truth_faces, 4),
        "top1": round(top1_hits / top1_n, 4) if top1_n else None,
        "baks": round(balanced_accuracy(known_bears, named), 4) if known_bears else None,
        "baus": round(balanced_accuracy(unknown_bears, turned_away), 4) if unknown_bears else None,
        "known_bears": len(set(known_bears)),
        "unknown_bears": len(set(unknown_bears)),
        "unknown_faces": len(unknown_bears),
        # unknown bears' faces named as a known bear (a missed face is not accepted), balanced over bears
        "false_accept": round(1 - balanced_accuracy(unknown_bears, turned_away), 4) if unknown_bears else None,
    }
    parts = [v for v in (out["baks"], out["baus"]) if v is not None]
    out["open_set"] = round(sum(parts) / len(parts), 4) if parts else None
    return out


def _match(answer: dict, box: tuple[float, float, float, float]) -> dict | None:
    best, best_iou = None, 0.5
    for face in answer["faces"]:
        b = face["box"]
        overlap = iou((b["left"], b["top"], b["width"], b["height"]), box)
        if overlap >= best_iou:
            best, best_iou = face, overlap
    return best
