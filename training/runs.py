"""`bearid runs`: the results tree with each stage's headline metrics, and the best path."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from training import results

# Headline metric per stage, where it lives in metrics.json.
HEADLINES = {
    "face_config": [("AP50", ("test", "ap50")), ("NME", ("test", "nme")), ("recall", ("test", "recall"))],
    "chip_config": [("chipped", ("test", "chipped"))],
    "embed_config": [("AUC", ("test", "verification_auc")), ("1-NN top1", ("test", "nn_top1"))],
    "class_config": [
        ("top1", ("test", "top1")),
        ("BAKS", ("test", "baks")),
        ("BAUS", ("test", "baus")),
        ("AUROC", ("test", "auroc")),
    ],
}
BY = {
    "top1": ("test", "top1"),
    "baks": ("test", "baks"),
    "baus": ("test", "baus"),
    "auroc": ("test", "auroc"),
    "open_set": None,
}  # open_set: mean of BAKS and BAUS


def _get(metrics: dict, where: tuple[str, ...]):
    for k in where:
        if not isinstance(metrics, dict) or k not in metrics:
            return None
        metrics = metrics[k]
    return metrics


def score(path: list[Path], by: str) -> float:
    m = results.read_metrics(path[-1])
    if by == "open_set":
        values = [_get(m, ("test", "baks")), _get(m, ("test", "baus"))]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else -math.inf
    v = _get(m, BY[by])
    return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@dataclass
class Runs:
    paths: list[list[Path]]
    best: list[Path] | None
    by: str

    def as_json(self, root: Path) -> dict:
        def node(d: Path) -> dict:
            m = results.read_metrics(d)
            stage = d.name.rsplit("_", 1)[0]
            return {
                "dir": str(d.relative_to(root)),
                "headline": {name: _get(m, where) for name, where in HEADLINES[stage]},
            }

        return {
            "by": self.by,
            "best": [str(p.relative_to(root)) for p in self.best] if self.best else None,
            "paths": [{"stages": [node(d) for d in p], "score": score(p, self.by)} for p in self.paths],
        }


def runs(root: Path, by: str = "open_set") -> Runs:
    paths = results.walk(Path(root))
    best = max(paths, key=lambda p: score(p, by)) if paths else None
    return Runs(paths, best, by)


def headline(d: Path) -> str:
    m = results.read_metrics(d)
    stage = d.name.rsplit("_", 1)[0]
    parts = []
    for name, where in HEADLINES[stage]:
        v = _get(m, where)
        if v is not None:
            parts.append(f"{name} {v:.3f}" if isinstance(v, float) else f"{name} {v}")
    return ", ".join(parts)
