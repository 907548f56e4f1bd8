"""Several annotators' answers for one photo made into one: the faces they agree on, and the
reasons a curator should look where they do not. Pure functions over the page's box JSON.

Each annotator's boxes are matched to the others' by IoU (greedy, highest first, one box per
annotator per face). A face drawn by most of them becomes a consensus face. Its box starts as
the per-coordinate median of the matched boxes (edges, so one careless box cannot drag it);
boxes far from that median (IoU under `keep_iou`) are then set aside and the rest averaged,
each weighted by how precisely the gold photos found its annotator draws (1 / error^2): the
median alone can only pick one annotator's edge, the weighted mean of the close ones beats
the best of them. Each landmark is made the same way around its median, `ignore` is the
majority, and the bear ID the vote weighted by each annotator's measured ID accuracy p, as
log((C - 1) p / (1 - p)) for C bears (the optimal weights for independent annotators; an
annotator not yet measured counts as the priors below).

A face disagrees when its annotators do not agree by a majority: when the majority's boxes
(the closest half and more) overlap the median box less than `iou_below`, the majority's
points of a landmark lie further than `spread_over` chip units from its median (a fraction of
the chip side, as bearid.chip makes chips from the eyes), the ID vote's winner holds less
than `vote_below` of the weight, or only some annotators drew it. One careless answer that
the other two outvote is no disagreement: it was set aside, and gold photos measure it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bearid.chip import DEFAULT_TEMPLATE, ChipSpec
from bearid.metadata import LANDMARKS

PRIOR = 0.7  # the ID accuracy of an annotator no gold face has measured yet
PRIOR_BOX = 0.06  # their box error: mean |edge - truth| / face size
PRIOR_POINT = 0.03  # their landmark error, chip units


@dataclass(frozen=True)
class Skill:
    """What gold photos measured of an annotator (or the priors, for one not yet measured)."""

    id_accuracy: float = PRIOR
    box_error: float = PRIOR_BOX
    point_error: float = PRIOR_POINT

    def id_weight(self, classes: int) -> float:
        p = min(max(self.id_accuracy, 0.01), 0.99)
        return max(math.log(max(classes - 1, 1) * p / (1 - p)), 0.01)


@dataclass(frozen=True)
class Bounds:
    match_iou: float = 0.3  # boxes of two annotators closer than this are one face
    keep_iou: float = 0.5  # a box overlapping the median box less than this is set aside
    iou_below: float = 0.7  # a face whose matched boxes overlap less than this (worst pair) disagrees
    spread_over: float = 0.05  # landmark spread, in chip units, over which a face disagrees
    vote_below: float = 0.6  # the ID vote's winning share under which a face disagrees


@dataclass
class Agreed:
    """The consensus of a photo: its boxes, and for each what disagrees (empty: agreed)."""

    boxes: list[dict] = field(default_factory=list)
    disputes: list[list[str]] = field(default_factory=list)  # per face: reasons
    unmatched: list[str] = field(default_factory=list)  # faces too few annotators drew

    @property
    def disputed(self) -> bool:
        return bool(self.unmatched) or any(self.disputes)

    def reasons(self) -> list[str]:
        out = [f"face {n + 1}: {'; '.join(r)}" for n, r in enumerate(self.disputes) if r]
        return out + self.unmatched


def _edges(box: dict) -> tuple[float, float, float, float]:
    return box["left"], box["top"], box["left"] + box["width"], box["top"] + box["height"]


def iou(a: dict, b: dict) -> float:
    """Intersection over union of two boxes ({left, top, width, height})."""
    al, at, ar, ab = _edges(a)
    bl, bt, br, bb = _edges(b)
    w, h = max(0.0, min(ar, br) - max(al, bl)), max(0.0, min(ab, bb) - max(at, bt))
    inter = w * h
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def chip_side(box: dict) -> float:
    """The side of the chip made of this face, in photo pixels: from the eyes as bearid.chip
    places them (the eye distance is a fixed share of the chip), else the box's size."""
    spec = ChipSpec()
    parts = box.get("parts") or {}
    if "leye" in parts and "reye" in parts:
        eyes = math.dist(parts["leye"], parts["reye"])
        share = abs(DEFAULT_TEMPLATE["leye"][0] - DEFAULT_TEMPLATE["reye"][0]) / (1 + 2 * spec.padding)
        if eyes > 0:
            return eyes / share
    return math.sqrt(max(box["width"] * box["height"], 1))


def match(answers: dict[str, list[dict]], min_iou: float) -> list[dict[str, dict]]:
    """Faces across annotators: each a dict annotator -> their box, matched greedily by IoU."""
    faces: list[dict[str, dict]] = []
    for who, boxes in sorted(answers.items()):
        pairs = sorted(
            (
                (max(iou(b, other) for other in face.values()), n, f)
                for n, b in enumerate(boxes)
                for f, face in enumerate(faces)
            ),
            reverse=True,
        )
        used_boxes, used_faces = set(), set()
        for score, n, f in pairs:
            if score < min_iou or n in used_boxes or f in used_faces:
                continue
            faces[f][who] = boxes[n]
            used_boxes.add(n)
            used_faces.add(f)
        for n, b in enumerate(boxes):
            if n not in used_boxes:
                faces.append({who: b})
    return faces


def vote(labels: dict[str, str | None], weights: dict[str, float]) -> tuple[str | None, float]:
    """The label with the most weight, and its share of all the weight."""
    tally: dict[str | None, float] = {}
    for who, label in labels.items():
        tally[label] = tally.get(label, 0.0) + max(weights.get(who, 1.0), 1e-3)
    total = sum(tally.values())
    best = max(sorted(tally, key=str), key=lambda k: tally[k])
    return best, tally[best] / total if total else 0.0


def _mean(values: list[float], weights: list[float]) -> float:
    return sum(v * w for v, w in zip(values, weights)) / sum(weights)


def combine(
    face: dict[str, dict], skills: dict[str, Skill], bounds: Bounds, classes: int = 2
) -> tuple[dict, list[str]]:
    """One consensus box of a matched face, and why it disagrees (nothing: it agrees)."""
    boxes = list(face.values())
    skill = {who: skills.get(who, Skill()) for who in face}
    median = [statistics.median(e[k] for e in map(_edges, boxes)) for k in range(4)]
    as_box = {"left": median[0], "top": median[1], "width": median[2] - median[0], "height": median[3] - median[1]}
    near = [who for who, b in face.items() if iou(b, as_box) >= bounds.keep_iou] or list(face)
    weights = [1 / max(skill[w].box_error, 1e-3) ** 2 for w in near]
    left, top, right, bottom = (_mean([_edges(face[w])[k] for w in near], weights) for k in range(4))
    out = {
        "left": round(left),
        "top": round(top),
        "width": max(1, round(right - left)),
        "height": max(1, round(bottom - top)),
        "parts": {},
        "ignore": sum(bool(b.get("ignore")) for b in boxes) * 2 > len(boxes),
        "attrs": {},
    }
    reasons = []
    majority = len(boxes) // 2  # the index, best first, of the last of the closest majority
    worst = sorted((iou(b, as_box) for b in boxes), reverse=True)[majority]
    if worst < bounds.iou_below:
        reasons.append(f"the majority's boxes overlap the median box only {worst:.2f} IoU")
    spread = 0.0
    names = [n for n in LANDMARKS if sum(n in (b.get("parts") or {}) for b in boxes) * 2 > len(boxes)]
    medians = {}
    for name in names:
        points = [b["parts"][name] for b in boxes if name in (b.get("parts") or {})]
        medians[name] = [statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)]
    side = chip_side(out | {"parts": medians})
    for name in names:
        placed = {w: b["parts"][name] for w, b in face.items() if name in (b.get("parts") or {})}
        close = [w for w, p in placed.items() if math.dist(p, medians[name]) <= 2 * bounds.spread_over * side]
        close = close or list(placed)
        weights = [1 / max(skill[w].point_error, 1e-3) ** 2 for w in close]
        x, y = (_mean([placed[w][k] for w in close], weights) for k in range(2))
        out["parts"][name] = [round(x), round(y)]
    for name in names:  # the spread: how far the closest majority's points lie from the median one
        far = sorted(math.dist(b["parts"][name], medians[name]) for b in boxes if name in (b.get("parts") or {}))
        spread = max(spread, far[len(far) // 2] / side)
    if spread > bounds.spread_over:
        reasons.append(f"the majority's landmarks spread {spread:.3f} chip units")
    id_weights = {who: skill[who].id_weight(classes) for who in face}
    label, share = vote({who: (b.get("label") or None) for who, b in face.items()}, id_weights)
    out["label"] = label
    if share < bounds.vote_below:
        reasons.append(f"the ID vote is split ({share:.0%} for {label or 'no ID'})")
    return out, reasons


def consensus(
    answers: dict[str, list[dict]], skills: dict[str, Skill] | None = None, bounds: Bounds = Bounds(), classes: int = 2
) -> Agreed:
    """The consensus of one photo's answers (annotator -> their boxes); `classes`: how many
    bears an ID could name (for the vote's weights)."""
    skills = skills or {}
    agreed = Agreed()
    k = len(answers)
    for face in match(answers, bounds.match_iou):
        if len(face) * 2 <= k:
            who = ", ".join(sorted(face))
            agreed.unmatched.append(f"a face only {len(face)} of {k} drew ({who})")
            continue
        box, reasons = combine(face, skills, bounds, classes)
        if len(face) < k:
            reasons.append(f"{k - len(face)} of {k} did not draw it")
        agreed.boxes.append(box)
        agreed.disputes.append(reasons)
    order = sorted(range(len(agreed.boxes)), key=lambda n: (agreed.boxes[n]["left"], agreed.boxes[n]["top"]))
    agreed.boxes = [agreed.boxes[n] for n in order]
    agreed.disputes = [agreed.disputes[n] for n in order]
    return agreed


@dataclass
class Score:
    """How one answer compares with a gold photo's truth."""

    ious: list[float] = field(default_factory=list)  # per true face (0 where it was missed)
    box_errors: list[float] = field(default_factory=list)  # per face drawn: mean |edge - truth| / face size
    landmark_errors: list[float] = field(default_factory=list)  # per placed landmark, chip units
    ids_right: int = 0
    ids_asked: int = 0
    extra: int = 0  # faces drawn where the truth has none


def score(answer: list[dict], truth: list[dict], min_iou: float = 0.3) -> Score:
    """An annotator's answer on a gold photo, face by face against the truth."""
    found = Score()
    faces = match({"answer": answer, "truth": truth}, min_iou)
    for face in faces:
        true, given = face.get("truth"), face.get("answer")
        if true is None:
            found.extra += 1
            continue
        if true.get("ignore"):
            continue
        found.ious.append(iou(true, given) if given else 0.0)
        if given:
            size = math.sqrt(max(true["width"] * true["height"], 1))
            found.box_errors.append(sum(abs(a - b) for a, b in zip(_edges(true), _edges(given))) / 4 / size)
        if true.get("label"):
            found.ids_asked += 1
            found.ids_right += bool(given) and (given.get("label") or None) == true["label"]
        if given:
            side = chip_side(true)
            for name, point in (true.get("parts") or {}).items():
                if name in (given.get("parts") or {}):
                    found.landmark_errors.append(math.dist(point, given["parts"][name]) / side)
    return found
