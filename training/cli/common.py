"""What the training verbs share: the console, a stage's config from YAML and `--set`, and the
splits a stage verb is given."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
Settings = Annotated[list[str] | None, typer.Option("--set", help="A config setting, e.g. --set steps=500.")]


def log(message: str) -> None:
    console.print(message, highlight=False)


def stage_config(stage: str, config: Path | None, settings: list[str] | None):
    from bearid.training.config import stage_config

    return stage_config(stage, config, settings)


def splits(train_xml: Path, others: dict[str, Path | None]) -> dict[str, Path]:
    return {"train": train_xml, **{k: v for k, v in others.items() if v is not None}}
