"""Training benchmarks: the accuracy table of the four stages on the synthetic world (the
default pipeline, plus the dlib face backend as a second face config), the default
pipeline's wall time, and embedding training speed (chips/s)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bearid.synth import WorldConfig
from training.config import FaceConfig, Pipeline
from training.pipeline import train

from common import Figure, Suite, split_world

WORLD = WorldConfig(bears=16, photos=900, seed=21)
# The reference system (Clapham et al. 2020, real photos) and the targets.
TARGETS = {"ap50": 0.97, "nme": 0.10, "top1": 0.95, "baks": 0.90, "baus": 0.80}


def _metrics(d: Path) -> dict:
    return json.loads((d / "metrics.json").read_text())


def run(work: Path) -> Suite:
    suite = Suite("training")
    splits, results = split_world(WORLD, work), work / "results"
    shutil.rmtree(results, ignore_errors=True)
    t0 = time.perf_counter()
    report = train(Pipeline(face=[FaceConfig(), FaceConfig(backend="dlib", max_train_photos=80)]), splits, results, log=print)
    total = time.perf_counter() - t0
    rows = []
    for branch in report.branches:
        face, chip, embed, cls = (_metrics(d) for d in branch)
        t = cls["test"]
        rows.append({"face backend": face["backend"], "AP@0.5": face["test"]["ap50"], "NME": face["test"]["nme"],
                     "face recall": face["test"]["recall"], "embed AUC": embed["test"]["verification_auc"],
                     "top-1": t.get("top1"), "top-5": t.get("top5"), "BAKS": t.get("baks"), "BAUS": t.get("baus"),
                     "AUROC": t.get("auroc"), "train+eval s": round(sum(m["seconds"] for m in (face, chip, embed, cls)), 0)})
    suite.tables[f"accuracy on the held-out test split ({WORLD.bears} bears, {WORLD.photos} photos; targets {TARGETS})"] = rows
    default = report.branches[0]
    seconds = sum(_metrics(d)["seconds"] for d in default)
    suite.add(Figure("default pipeline wall time (4 stages, train + evaluate)", seconds, "s", goal="<= 600 s", met=seconds <= 600,
                     note=f"sweep with the dlib branch: {total:.0f} s in all"))
    e = _metrics(default[2])
    suite.add(Figure("embed training speed", e["chips_per_second"], "chips/s", note=f"{e['train_chips']} training chips, {e['identities']} bears"))
    best = rows[0]
    for key, name in (("AP@0.5", "ap50"), ("top-1", "top1"), ("BAKS", "baks"), ("BAUS", "baus")):
        suite.add(Figure(f"{key} (default pipeline, test)", best[key], "", goal=f">= {TARGETS[name]}", met=best[key] is not None and best[key] >= TARGETS[name]))
    suite.add(Figure("NME (default pipeline, test)", best["NME"], "of inter-eye distance", goal="<= 0.10", met=best["NME"] <= 0.10))
    return suite
