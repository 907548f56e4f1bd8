"""dlib's max-margin object-detection loss (loss_mmod_ of dlib/dnn/loss.h), so an imported
MMOD detector trains further on the loss it was trained with.

For each image of a batch, on the network's output (one channel per detector window):
- every truth box the network can represent is mapped, through the same tiled pyramid as
  inference, to one output cell (dlib's image_rect_to_feat_coord); that cell's score should
  rise (gradient -scale). A box the windows and grid cannot represent (too small, too close to
  the edge, a shape no window fits) or one mapped to the cell of another is ignored;
- the loss starts at `loss_per_missed_target` per truth box; candidates scoring above
  `-loss_per_false_alarm`, best first and kept through NMS (at most 50 + 5 per truth box), are
  the hard negatives: one that hits no truth box (and no box marked ignore) is a false alarm,
  a second hit on a truth box a duplicate; each costs `loss_per_false_alarm` and its score
  should fall (gradient +scale). A truth box is counted as found only when its hits score
  above the cost of missing it, and a truth box that NMS would kill (another truth box
  overlaps it) is ignored.

scale = 1 / (rows * cols * images * windows), as dlib's. The loss value is dlib's (about the
number of mistakes an image); the gradient is what dlib hands the network, so
`output.backward(gradient)` trains as dlib trains. Truth boxes are of one class: the labels
of windows and boxes are not compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bearid.dlibformat.network import MmodOptions
from bearid.face.mmod import MmodSpec, Rect, _to_image, image_to_tiled

MAX_INITIAL = 100  # candidates looked at per allowed detection (dlib's max_num_initial_dets)


@dataclass(frozen=True)
class Truth:
    rect: Rect  # left, top, right, bottom (inclusive), in the image the pyramid was made of
    ignore: bool = False


@dataclass
class MmodLoss:
    value: float  # dlib's loss: the mean over the batch of its images' losses
    gradient: np.ndarray  # d loss / d output, the output's shape (dlib's, scaled as dlib scales it)
    targets: int  # truth boxes given a cell
    ignored: int  # truth boxes the network cannot represent, or that NMS would kill
    false_alarms: int  # hard negatives penalised (false alarms and duplicate hits)


@dataclass
class _Det:
    rect: Rect
    score: float
    offset: int  # index into the image's flattened output


# -- dlib's geometry (dlib/geometry/rectangle.h) ---------------------------------------------
def _area(r: Rect) -> int:
    return max(0, r[2] - r[0] + 1) * max(0, r[3] - r[1] + 1)


def _inner(a: Rect, b: Rect) -> int:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Rect, b: Rect) -> float:
    """dlib's box_intersection_over_union."""
    inner = _inner(a, b)
    return 0.0 if inner == 0 else inner / (_area(a) + _area(b) - inner)


def box_overlap(a: Rect, b: Rect, iou_thresh: float, covered: float) -> bool:
    """dlib's test_box_overlap (19.x): IoU, or the share of either box covered."""
    inner = _inner(a, b)
    if inner == 0:
        return False
    return (
        inner / (_area(a) + _area(b) - inner) > iou_thresh or inner / _area(a) > covered or inner / _area(b) > covered
    )


def _round(v: float) -> int:
    return int(math.floor(v + 0.5))


def _rounded(r: tuple[float, ...]) -> Rect:
    return tuple(_round(v) for v in r)  # type: ignore[return-value]


def _center(r: Rect) -> tuple[int, int]:
    """dlib's center(rectangle): (left + right + 1) / 2 in integers, as C++ divides."""

    def half(v: int) -> int:
        return v // 2 if v >= 0 else -((1 - v) // 2)  # dlib subtracts 1 from a negative sum, then truncates

    return half(r[0] + r[2] + 1), half(r[1] + r[3] + 1)


def _centered(p: tuple[int, int], width: int, height: int) -> Rect:
    left, top = p[0] - width // 2, p[1] - height // 2
    return (left, top, left + width - 1, top + height - 1)


def _set_area(r: Rect, area: int) -> Rect:
    """dlib's move_rect(set_rect_area(r, area), (0, 0)): the box scaled to `area` at the origin."""
    w, h = r[2] - r[0] + 1, r[3] - r[1] + 1
    k = math.sqrt(area / (w * h))
    c = _centered(_center(r), round(w * k), round(h * k))
    return (0, 0, c[2] - c[0], c[3] - c[1])


# -- truth boxes to output cells --------------------------------------------------------------
def best_window(rect: Rect, spec: MmodSpec) -> int:
    """The detector window most like the box in shape (dlib's find_best_detection_window, with
    an image pyramid: both scaled to 400x400 px of area and compared by IoU)."""
    box = _set_area(rect, 400 * 400)
    scores = [iou(box, _set_area(_centered((0, 0), w, h), 400 * 400)) for w, h in spec.windows]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def truth_cell(
    rect: Rect, rects: list[Rect], out_shape: tuple[int, int], spec: MmodSpec, options: MmodOptions
) -> tuple[int, int, int] | None:
    """(window, row, column) of the output cell a truth box trains, or None where the pyramid,
    the windows and the grid cannot represent it (dlib's image_rect_to_feat_coord)."""
    first = rects[0]
    cx, cy = _center(rect)
    if not (0 <= cx <= first[2] - first[0] and 0 <= cy <= first[3] - first[1]):
        raise ValueError(f"a truth box {rect} whose centre is outside the image")  # dlib's impossible_labeling_error
    k = best_window(rect, spec)
    w, h = spec.windows[k]
    scale = max(w / (rect[2] - rect[0] + 1), h / (rect[3] - rect[1] + 1))
    mapped = _rounded(image_to_tiled(rect, min(1.0, scale), rects, spec))
    p = _center(mapped)
    window = _rounded(_to_image(_centered(p, w, h), rects, spec))
    if iou(rect, window) <= options.truth_match_iou:
        return None
    a, b = spec.output_to_input
    col, row = _round((p[0] - b) / a), _round((p[1] - b) / a)
    if not (0 <= row < out_shape[0] and 0 <= col < out_shape[1]):
        return None  # too close to the edge for the network's features
    return k, row, col


def _candidates(scores: np.ndarray, rects: list[Rect], spec: MmodSpec, threshold: float, cap: int) -> list[_Det]:
    """Every output position above `threshold` as a box of the image, best first (dlib's
    tensor_to_dets; at most `cap`)."""
    a, b = spec.output_to_input
    flat = scores.ravel()
    above = np.flatnonzero(flat > threshold)
    above = above[np.argsort(-flat[above], kind="stable")][:cap]
    _, rows, cols = scores.shape
    out = []
    for offset in above:
        k, r, c = np.unravel_index(offset, scores.shape)
        w, h = spec.windows[k]
        px, py = a * c + b, a * r + b
        tensor_rect = (px - (w - 1) / 2, py - (h - 1) / 2, px + (w - 1) / 2, py + (h - 1) / 2)
        out.append(_Det(_rounded(_to_image(tensor_rect, rects, spec)), float(flat[offset]), int(offset)))
    return out


def _best_match(truths: list[Truth], hit: list[bool], rect: Rect) -> tuple[float, int]:
    """The truth box the detection overlaps most, among those not yet hit, else among all."""
    for allow_hit in (False, True):
        match, best = 0.0, 0
        for i, t in enumerate(truths):
            if t.ignore or (hit[i] and not allow_hit):
                continue
            m = iou(rect, t.rect)
            if m > match:
                match, best = m, i
        if match > 0:
            break
    return match, best


def _image_loss(
    scores: np.ndarray, truths: list[Truth], rects: list[Rect], spec: MmodSpec, options: MmodOptions, scale: float
) -> tuple[float, np.ndarray, int, int, int]:
    """One image's loss and gradient (its output: windows x rows x cols)."""
    flat = scores.ravel()
    g = np.zeros_like(flat)
    miss, fa = options.loss_per_missed_target, options.loss_per_false_alarm
    max_dets = 50 + 5 * len(truths)
    dets = _candidates(scores, rects, spec, -fa, max_dets * MAX_INITIAL)
    nms = (options.nms_iou, options.nms_covered)

    loss = len(truths) * miss
    idx: list[int] = []
    cells: dict[int, Rect] = {}
    for t in truths:
        cell = None if t.ignore else truth_cell(t.rect, rects, scores.shape[1:], spec, options)
        if cell is None or (offset := int(np.ravel_multi_index(cell, scores.shape))) in cells:
            loss -= miss  # ignored, unrepresentable, or on another truth box's cell
            idx.append(-1)
            continue
        loss -= flat[offset]
        g[offset] = -scale
        idx.append(offset)
        cells[offset] = t.rect

    def nms_kept(kept: list[_Det], d: _Det) -> bool:
        return not any(box_overlap(k.rect, d.rect, *nms) for k in kept)

    # What the best-scoring hits on each truth box add up to (duplicates count as false alarms).
    hit_scores = [0.0] * len(truths)
    hit = [False] * len(truths)
    kept: list[_Det] = []
    for d in dets:
        if len(kept) >= max_dets:
            break
        if not nms_kept(kept, d):
            continue
        match, j = _best_match(truths, hit, d.rect)
        kept.append(d)
        if match > options.truth_match_iou:
            hit_scores[j] += d.score if not hit[j] else d.score + fa
            hit[j] = True

    # A truth box missed because another truth box overlaps it as NMS sees it cannot be found.
    ignored = sum(1 for i in idx if i == -1)
    killed = 0
    for i, t in enumerate(truths):
        if hit[i] or t.ignore:
            continue
        match, j = 0.0, 0
        for n, other in enumerate(truths):
            if n != i and not other.ignore and (m := iou(t.rect, other.rect)) > match:
                match, j = m, n
        if j == i or truths[j].ignore or not box_overlap(truths[j].rect, t.rect, *nms):
            continue
        if idx[i] != -1:
            loss -= miss - flat[idx[i]]
            g[idx[i]] = 0
            killed += 1

    # The detections that jointly maximise loss plus score: hard negatives and found truths.
    hit = [False] * len(truths)
    final: list[_Det] = []
    false_alarms = 0
    for d in dets:
        if len(final) >= max_dets:
            break
        if not nms_kept(final, d):
            continue
        match, j = _best_match(truths, hit, d.rect)
        if match > options.truth_match_iou:
            if hit_scores[j] > miss:
                final.append(d)
                if not hit[j]:
                    hit[j] = True
                    loss -= miss
                else:
                    loss += fa
                    false_alarms += 1
        elif not any(
            t.ignore and box_overlap(t.rect, d.rect, options.ignore_iou, options.ignore_covered) for t in truths
        ):
            final.append(d)
            loss += fa
            false_alarms += 1
    for d in final:
        loss += flat[d.offset]
        g[d.offset] += scale
    return float(loss), g.reshape(scores.shape), len(cells) - killed, ignored + killed, false_alarms


def mmod_loss(
    output: np.ndarray, truths: list[list[Truth]], rects: list[Rect], spec: MmodSpec, options: MmodOptions
) -> MmodLoss:
    """dlib's loss and gradient for a batch (output: images x windows x rows x cols; `truths`:
    each image's boxes; `rects`: where the pyramid's levels are in the tiled input, the same
    for every image of the batch, as dlib's input layer requires)."""
    n, k, rows, cols = output.shape
    if len(truths) != n or k != len(spec.windows):
        raise ValueError(f"{n} images and {len(truths)} truth lists; {k} channels and {len(spec.windows)} windows")
    scale = 1.0 / (rows * cols * n * k)
    total, grads, targets, ignored, fas = 0.0, [], 0, 0, 0
    for scores, boxes in zip(output, truths):
        loss, g, t, i, f = _image_loss(np.asarray(scores, np.float64), boxes, rects, spec, options, scale)
        total, targets, ignored, fas = total + loss, targets + t, ignored + i, fas + f
        grads.append(g)
    return MmodLoss(total / n, np.stack(grads).astype(np.float32), targets, ignored, fas)
