"""The synthetic bear world: BearID's own data for the demo, the tests and the benchmarks.

from bearid.synth import WorldConfig, synthesize
report = synthesize(WorldConfig(bears=12, photos=200, seed=1), Path("world"), messy=True)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text
from bearid.overrides import with_overrides
from bearid.synth.messy import add_mess
from bearid.synth.tree import TRUTH_DIR, SynthReport, default_workers, write_world
from bearid.synth.world import WorldConfig

__all__ = ["WorldConfig", "SynthReport", "synthesize", "TRUTH_DIR", "default_workers", "config_with", "made_with"]

_STAMP = "synth.json"


def synthesize(
    config: WorldConfig,
    out: Path,
    messy: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SynthReport:
    """Write a world (and, with `messy`, its planted defects) under `out`.

    Deterministic for a config. Refuses a non-empty `out` unless it holds a world made (or
    begun: a run that was stopped) with the same settings; that one is finished, every photo
    already there as it must be left alone, so re-running is safe and resumes.
    """
    out = Path(out)
    stamp = out / TRUTH_DIR / _STAMP
    if out.exists() and any(out.iterdir()):
        if not stamp.exists():
            raise BearIDError(f"{out} is not empty and holds no synthetic world; choose a new or empty directory")
        if not made_with(out, config, messy, finished=False):
            raise BearIDError(
                f"{out} holds a synthetic world {'made' if _finished(stamp) else 'begun'} with other settings; "
                "choose a new or empty directory"
            )
    atomic_write_text(
        stamp, json.dumps({**_settings(config, messy), "finished": False}, indent=1)
    )  # first: a stopped run resumes
    world, dataset, report = write_world(config, out, workers=workers, progress=progress)
    if messy:
        report.planted = dict(Counter(p.defect for p in add_mess(world, dataset, out)))
    atomic_write_text(stamp, json.dumps(_settings(config, messy), indent=1))
    return report


def _finished(stamp: Path) -> bool:
    return json.loads(stamp.read_text()).get("finished", True)


def made_with(out: Path, config: WorldConfig, messy: bool = False, finished: bool = True) -> bool:
    """Whether `out` holds a world made with these settings (with `finished` false, also one
    begun and stopped). A setting added since the world was made reads as its default, which
    is how it was made."""
    stamp = Path(out) / TRUTH_DIR / _STAMP
    if not stamp.exists():
        return False
    made = json.loads(stamp.read_text())
    if not made.pop("finished", True) and finished:
        return False
    made["config"] = {**_settings(WorldConfig(), messy)["config"], **made.get("config", {})}
    return made == _settings(config, messy)


def _settings(config: WorldConfig, messy: bool) -> dict:
    """What a world's stamp records, as JSON reads it back (tuples become lists)."""
    return {"config": json.loads(json.dumps(config.__dict__)), "messy": messy}


def config_with(base: WorldConfig, settings: list[str]) -> WorldConfig:
    """Apply `knob=value` overrides (e.g. "max_yaw=50", "jpeg_quality=60,90") to a config."""
    return with_overrides(base, settings, what="world setting")
