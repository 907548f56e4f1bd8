"""`bearid promote`: a bundle becomes the champion only if it does at least as well as the
current champion on a gate set, both answered in the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bearid.errors import BearIDError
from bearid.evaluate import gate_answers, tally
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.serving.store import ModelStore

METRICS = ("open_set", "baks", "baus", "top1", "face_recall")  # what a gate compares by


def open_set_risk(bundle: bundles.Bundle, candidate: dict | None) -> str | None:
    """Why the bundle's open-set reject misses its false-accept target, or None. Missed: its
    class stage found no threshold that met the target on validation, or the gate's unknown
    bears are accepted more often than the target even at the low end of a 95% interval
    (Wilson's, over the unknown faces: a gate of a few strangers cannot show a small excess)."""
    open_set = bundle.manifest.get("open_set") or {}
    target = open_set.get("target_far")
    if target is None:
        return None
    if open_set.get("target_met") is False:
        return f"its class stage found no threshold meeting the false-accept target {target} on validation"
    far, n = (candidate or {}).get("false_accept"), (candidate or {}).get("unknown_faces") or 0
    if far is None or not n:
        return None
    low, high = wilson(far, n)
    if low > target:
        return (
            f"the gate's unknown bears are named as known bears {far:.3f} of the time "
            f"(95% interval {low:.3f}-{high:.3f}, {n} faces of {candidate['unknown_bears']} bears), "
            f"above the target {target}"
        )
    return None


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion `p` of `n` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Promotion:
    version: str
    promoted: bool
    candidate: dict | None  # the candidate's gate figures over all its bears
    champion: dict | None
    champion_version: str | None
    reason: str
    compared: tuple[dict, dict] | None = None  # (candidate, champion) on the bears both know or neither
    left_out: tuple[str, ...] = ()  # bears only one of them knows, out of the comparison


def compare(candidate: Pipeline, champion: Pipeline, gate: list[Path], limit: int = 0):
    """Both models answer the gate once. Returns each one's figures over all its bears, then
    both on the same question (a bear only one of them knows is a known bear for one and a
    stranger for the other, so its faces are left out of both), and the bears left out."""
    ours, theirs = set(candidate.classifier.ids), set(champion.classifier.ids)
    left_out = frozenset(ours ^ theirs)
    mine, current = gate_answers(candidate, gate, limit), gate_answers(champion, gate, limit)
    compared = (tally(mine, ours, left_out), tally(current, theirs, left_out))
    return tally(mine, ours), tally(current, theirs), compared, tuple(sorted(left_out))


def promote(
    folder: Path,
    gate: list[Path],
    store: ModelStore,
    metric: str = "open_set",
    force: bool = False,
    limit: int = 0,
    accept_open_set_risk: bool = False,
) -> Promotion:
    """Promote the bundle in `folder` if it answers the gate photos at least as well as the
    champion by `metric` and its open-set reject meets its false-accept target (see
    `open_set_risk`; `accept_open_set_risk` promotes it anyway, and the store records it)."""
    if metric not in METRICS:
        raise BearIDError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
    bundle = bundles.load(folder)  # verified before anything is unpickled
    current = store.champion()
    if current == bundle.version:
        return Promotion(bundle.version, False, None, None, current, "already the champion")
    candidate = champion = None
    compared, left_out = None, ()
    if gate:
        pipeline = Pipeline.from_bundle(bundle)
        if current:
            previous = Pipeline.from_bundle(bundles.load(store.path_of(current)))
            candidate, champion, compared, left_out = compare(pipeline, previous, gate, limit)
        else:
            candidate = tally(gate_answers(pipeline, gate, limit), set(pipeline.classifier.ids))
    elif not force:
        raise BearIDError("give a gate set (--gate XML, a faces XML with bear labels) or --force")
    risk = open_set_risk(bundle, candidate) if gate else None
    if risk and not accept_open_set_risk:
        return Promotion(
            bundle.version, False, candidate, champion, current,
            f"{risk}: refused (use --accept-open-set-risk to promote anyway)", compared, left_out,
        )  # fmt: skip
    ours, theirs = compared or (candidate, champion)
    worse = theirs is not None and ours is not None and (ours.get(metric) or 0) < (theirs.get(metric) or 0)
    shared = f" on the bears both know or neither ({len(left_out)} known to one only left out)" if left_out else ""
    if worse and not force:
        return Promotion(
            bundle.version, False, candidate, champion, current,
            f"{metric} {ours.get(metric)} is below the champion's {theirs.get(metric)}{shared}: "
            "refused (use --force to promote anyway)", compared, left_out,
        )  # fmt: skip
    store.add(folder)
    store.promote(
        bundle.version,
        {
            "gate": {
                "metric": metric,
                "candidate": candidate,
                "champion": champion,
                "compared": compared and {"candidate": compared[0], "champion": compared[1]},
                "left_out": list(left_out),
            },
            "forced": bool(worse and force),
            "open_set_risk_accepted": risk,
        },
    )
    reason = (
        "forced past a better champion"
        if worse
        else ("no champion yet" if not current else f"{metric} at least the champion's{shared}")
    ) + (f"; open-set risk accepted: {risk}" if risk else "")
    return Promotion(bundle.version, True, candidate, champion, current, reason, compared, left_out)
