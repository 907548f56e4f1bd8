"""The results tree: one directory per stage config, nested by dependency.

    RESULTS/face_config_01/chip_config_01/embed_config_01/class_config_01/

A stage directory is keyed by its config and what it was computed from (its parent, or for
the face stage the data splits): the same key reuses the directory and recomputes nothing;
a new key gets the next number. A stage is complete once its `metrics.json` is written
(last); an incomplete directory is simply computed again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bearid.fsio import atomic_write_text
from bearid.training.config import STAGES, Stage

KEY_FILE = ".key"
METRICS = "metrics.json"
PRUNED = "PRUNED.json"  # `bearid runs prune` removed this stage's weights/chips/embeddings
CONFIG = "config.yaml"
STAGE_ORDER = tuple(s.dir_prefix for s in STAGES.values())  # face_config, chip_config, embed_config, class_config


def key_of(prefix: str, config: dict, inputs: str) -> str:
    blob = json.dumps({"stage": prefix, "config": config, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StageDir:
    path: Path
    key: str
    reused: bool

    @property
    def complete(self) -> bool:
        """Finished and whole: a pruned stage must be computed again to be used."""
        return is_complete(self.path)


def is_complete(d: Path) -> bool:
    return (d / METRICS).exists() and not is_pruned(d)


def is_pruned(d: Path) -> bool:
    return (d / PRUNED).exists()


def reset(d: Path) -> None:
    """Before recomputing a stage: no metrics (so it reads as incomplete until it finishes),
    then no pruned mark."""
    (d / METRICS).unlink(missing_ok=True)
    (d / PRUNED).unlink(missing_ok=True)


def stage_dir(parent: Path, stage: Stage, config: dict, inputs: str) -> StageDir:
    """The directory for this config under `parent`: an existing one with the same key,
    or the next free number."""
    prefix = stage.dir_prefix
    parent.mkdir(parents=True, exist_ok=True)
    key = key_of(prefix, config, inputs)
    numbers = []
    for d in sorted(parent.glob(f"{prefix}_[0-9]*")):
        if (d / KEY_FILE).exists() and (d / KEY_FILE).read_text().strip() == key:
            return StageDir(d, key, reused=is_complete(d))
        if m := re.fullmatch(rf"{prefix}_(\d+)", d.name):
            numbers.append(int(m.group(1)))
    d = parent / f"{prefix}_{max(numbers, default=0) + 1:02d}"
    d.mkdir()
    atomic_write_text(d / KEY_FILE, key)
    atomic_write_text(d / CONFIG, yaml.safe_dump({"stage": stage.name, **config}, sort_keys=False))
    return StageDir(d, key, reused=False)


def write_metrics(d: Path, metrics: dict) -> None:
    atomic_write_text(d / METRICS, json.dumps(metrics, indent=1, default=float))


def read_metrics(d: Path) -> dict:
    return json.loads((d / METRICS).read_text()) if (d / METRICS).exists() else {}


def fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes() if f.exists() else b"-")
    return h.hexdigest()


def data_key(split_files: list[Path]) -> str:
    """What the face stage is computed from, beyond its config: the split files, the size and
    modification time of every photo they list (a photo changed in place changes it), and
    the BearID release (a new release never reuses a stage an older one computed)."""
    from bearid import __version__
    from bearid.metadata import read_faces

    h = hashlib.sha256(f"bearid {__version__}\n{fingerprint(split_files)}\n".encode())
    for xml in split_files:
        dataset = read_faces(xml)
        for image in dataset.images:
            path = dataset.path_of(image)
            try:
                st = path.stat()
                h.update(f"{image.file}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{image.file}\tmissing\n".encode())
    return h.hexdigest()


def stage_paths(results: Path, finished_only: bool = True) -> list[list[Path]]:
    """Every path down the tree, face -> chip -> embed -> class, as its stage directories,
    in order. With `finished_only`, only paths whose four stages have their metrics; else
    also each path as far as its directories go (a face config with no chip config under it
    is a path of one)."""
    paths: list[list[Path]] = []

    def down(d: Path, trail: list[Path], depth: int) -> None:
        children = (
            [c for c in sorted(d.glob(f"{STAGE_ORDER[depth]}_[0-9]*")) if c.is_dir()]
            if depth < len(STAGE_ORDER)
            else []
        )
        if finished_only:
            children = [c for c in children if (c / METRICS).exists()]
        if depth == len(STAGE_ORDER) or (not children and not finished_only and trail):
            paths.append(trail)
        for child in children:
            down(child, [*trail, child], depth + 1)

    down(Path(results), [], 0)
    return paths


def walk(results: Path) -> list[list[Path]]:
    """Every finished path face -> chip -> embed -> class in the tree."""
    return stage_paths(results)


def stage_dirs(results: Path) -> list[Path]:
    """Every stage directory in the tree, parents before children."""
    seen: dict[Path, None] = {}
    for path in stage_paths(results, finished_only=False):
        seen.update(dict.fromkeys(path))
    return list(seen)
