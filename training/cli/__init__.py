"""The training verbs of the `bearid` command, one module per verb group (registered through
the `bearid.commands` entry point; torch is imported only when a verb runs).

The `bearid` command loads this package while it is itself being imported, so no module here
imports `bearid.cli` at import time (the progress bars are imported where a verb runs)."""

from __future__ import annotations

import typer

from bearid.training.cli import chip, classify, embed, face, import_dlib, runs, train


def register(app: typer.Typer) -> None:
    """Add the training verbs to the `bearid` command."""
    app.command("train")(train.train)
    app.command("import-dlib")(import_dlib.import_dlib)
    app.add_typer(runs.app, name="runs")
    app.add_typer(face.app, name="face")
    app.command("chip")(chip.chip)
    app.add_typer(embed.app, name="embed")
    app.add_typer(classify.app, name="classify")
