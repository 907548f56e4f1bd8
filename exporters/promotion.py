"""`bearid promote`: a bundle becomes the champion only if it does at least as well as the
current champion on a gate set, both answered in the same run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bearid.errors import BearIDError
from bearid.evaluate import gate_metrics
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.serving.store import ModelStore


@dataclass
class Promotion:
    version: str
    promoted: bool
    candidate: dict | None
    champion: dict | None
    champion_version: str | None
    reason: str


def promote(
    folder: Path, gate: list[Path], store: ModelStore, metric: str = "open_set", force: bool = False, limit: int = 0
) -> Promotion:
    bundle = bundles.load(folder)  # verified before anything is unpickled
    current = store.champion()
    if current == bundle.version:
        return Promotion(bundle.version, False, None, None, current, "already the champion")
    candidate = champion = None
    if gate:
        candidate = gate_metrics(Pipeline.from_bundle(bundle), gate, limit)
        if current:
            champion = gate_metrics(Pipeline.from_bundle(bundles.load(store.path_of(current))), gate, limit)
    elif not force:
        raise BearIDError("give a gate set (--gate XML, a faces XML with bear labels) or --force")
    worse = (
        champion is not None and candidate is not None and (candidate.get(metric) or 0) < (champion.get(metric) or 0)
    )
    if worse and not force:
        return Promotion(
            bundle.version,
            False,
            candidate,
            champion,
            current,
            f"{metric} {candidate.get(metric)} is below the champion's "
            f"{champion.get(metric)}: refused (use --force to promote anyway)",
        )
    store.add(folder)
    store.promote(
        bundle.version,
        {"gate": {"metric": metric, "candidate": candidate, "champion": champion}, "forced": bool(worse and force)},
    )
    reason = (
        "forced past a better champion"
        if worse
        else ("no champion yet" if not current else f"{metric} at least the champion's")
    )
    return Promotion(bundle.version, True, candidate, champion, current, reason)
