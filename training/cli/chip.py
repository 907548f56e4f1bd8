"""`bearid chip`: the chip stage alone, from faces XML, like the original tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import Settings, console, stage_config


def chip(
    faces: Annotated[list[Path], typer.Argument(help="faces XML files (one per split)")],
    out: Annotated[Path, typer.Option(help="output directory (chip_images/, chip_meta/)")],
    config: Annotated[Path | None, typer.Option(help="chip config YAML")] = None,
    setting: Settings = None,
) -> None:
    """Cut pose-normalised face chips from landmarks; report faces that could not be chipped.

    Example: bearid chip results/face_config_01/face_meta/*.xml --out chips --set size=150
    """
    from bearid.metadata import read_faces, write_chips
    from bearid.training.chip import chip_dataset
    from bearid.training.embed.chipcache import build_cache

    spec = stage_config("chip", config, setting).spec()
    for path in faces:
        chipset, report = chip_dataset(read_faces(path), out / "chip_images", out / "chip_meta", spec)
        write_chips(chipset, out / "chip_meta" / path.name)
        note = f"; packed into {build_cache(out / 'chip_meta' / path.name).root}" if chipset.chips else ""
        console.print(
            f"{path.name}: {report.chipped} of {report.faces} faces chipped"
            + (f"; not chipped: {dict(report.problems)}" if report.problems else "")
            + note
        )
