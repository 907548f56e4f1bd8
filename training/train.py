"""`bearid train`: run the four stages over every branch of a sweep, in the results tree,
reusing every stage directory whose config and inputs are unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bearid.errors import BearIDError
from bearid.fsio import sha256_file
from bearid.training import results, stages
from bearid.training.config import STAGES, Sweep, as_dict
from bearid.training.pathnet import answer_validation
from bearid.training.progress import Log, advance

# Raised when a stage's outputs change form, so a stage directory written before is not
# reused (a new numbered one is made beside it, the old one is kept).
# embed 2: the embedding files keep the vectors' lengths (the Mahalanobis open-set score).
OUTPUT_FORMATS = {"embed": 2}


@dataclass
class TrainReport:
    branches: list[list[Path]] = field(default_factory=list)
    computed: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def split_files(data: Path) -> dict[str, Path]:
    files = {name: Path(data) / f"{name}.xml" for name in stages.SPLITS}
    missing = [n for n in ("train", "val", "test") if not files[n].exists()]
    if missing:
        raise BearIDError(
            f"{data}: missing {', '.join(m + '.xml' for m in missing)} (make them with bearid data split)"
        )
    return {n: p for n, p in files.items() if p.exists()}


def train(sweep: Sweep, data: Path, results_dir: Path, log: Log = print, tracker=None) -> TrainReport:
    """Every branch of `sweep` on the splits in `data`, into `results_dir`; each stage, once
    finished (or found finished), also goes to `tracker` (a `bearid.training.tracking.MlflowTracker`)."""
    from bearid.training.device import pin_threads

    t0 = time.perf_counter()
    computed_with = pin_threads()
    total = len({branch[: i + 1] for branch in sweep.branches() for i in range(len(branch))})  # shared stages once
    splits = split_files(data)
    report = TrainReport()
    data_key = results.data_key(list(splits.values()))

    def step(parent: Path, stage: str, config, inputs: str, run: Callable[[Path], dict]) -> results.StageDir:
        if stage in OUTPUT_FORMATS:
            inputs = f"{inputs}|format {OUTPUT_FORMATS[stage]}"
        for name in ("init", "landmarks", "weights"):  # a model file started from: its content, not only its name
            if (path := getattr(config, name, None)) and Path(path).is_file():
                inputs = f"{inputs}|{name} {sha256_file(Path(path))}"
        d = results.stage_dir(parent, STAGES[stage], as_dict(config), inputs)
        if d.complete:
            report.reused.append(d.path)
            log(f"{d.path}: unchanged, reused")
        else:
            log(f"{d.path}: computing" + (" again (it was pruned)" if results.is_pruned(d.path) else ""))
            results.reset(d.path)
            results.write_metrics(d.path, {**run(d.path), "computed_with": computed_with})
            report.computed.append(d.path)
        if tracker is not None:
            tracker.stage(d.path)
        advance(log, "stages", len(set(report.computed) | set(report.reused)), total)
        return d

    for face_cfg, chip_cfg, embed_cfg, classify_cfg in sweep.branches():
        face = step(
            results_dir, "face", face_cfg, data_key, partial(stages.run_face, cfg=face_cfg, splits=splits, log=log)
        )
        run_chip = partial(stages.run_chip, cfg=chip_cfg, face_meta=face.path / "face_meta", truth=splits, log=log)
        chip = step(face.path, "chip", chip_cfg, face.key, run_chip)
        run_embed = partial(stages.run_embed, cfg=embed_cfg, chip_meta=chip.path / "chip_meta", log=log)
        embed = step(chip.path, "embed", embed_cfg, chip.key, run_embed)
        run_classify = partial(stages.run_classify, cfg=classify_cfg, embeddings=embed.path / "embeddings", log=log)
        classify = step(embed.path, "classify", classify_cfg, embed.key, run_classify)
        branch = [face.path, chip.path, embed.path, classify.path]
        answered = answer_validation(branch, splits["val"])
        if answered:
            v = answered["val"]
            log(
                f"{classify.path}: validation photos answered end to end: face recall {v['face_recall']}, "
                f"BAKS {v['baks']}, BAUS {v['baus']}"
            )
        report.branches.append(branch)
    report.seconds = time.perf_counter() - t0
    return report
