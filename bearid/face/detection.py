"""A found face, and non-maximum suppression: what every detector's output becomes."""

from __future__ import annotations

from dataclasses import dataclass

from bearid.metrics import intersection, iou


@dataclass
class Detection:
    left: float
    top: float
    width: float
    height: float
    score: float
    landmarks: dict[str, tuple[float, float]]

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.width, self.height)


def _inside(small: Detection, big: Detection) -> float:
    """Share of `small`'s area inside `big`."""
    return intersection(small.box, big.box) / max(small.width * small.height, 1e-9)


def suppress(found: list[Detection], nms_iou: float, max_faces: int) -> list[Detection]:
    """Non-maximum suppression: drop a face overlapping a better one, or mostly inside it
    (bear faces do not nest; parts of one big face can look like small faces)."""
    kept: list[Detection] = []
    for det in sorted(found, key=lambda d: -d.score):
        if all(iou(det.box, k.box) < nms_iou and _inside(det, k) < 0.7 and _inside(k, det) < 0.7 for k in kept):
            kept.append(det)
        if len(kept) == max_faces:
            break
    return kept
