"""`bearid train`: every stage of every branch of a sweep, reusing unchanged stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import console
from bearid.training.cli.runs import show_runs


def train(
    pipeline: Annotated[
        Path | None,
        typer.Argument(help="Pipeline YAML (configs per stage; lists make a sweep). Default: the default configs."),
    ] = None,
    data: Annotated[
        Path, typer.Option(help="Directory with train.xml, val.xml, test.xml (and holdout.xml) from bearid data split.")
    ] = Path("splits"),
    results_dir: Annotated[Path, typer.Option("--results", help="The results tree.")] = Path("results"),
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change one setting of every config of a stage, e.g. --set embed.steps=400."),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(help="Also log each stage as an MLflow run at this tracking URI (e.g. file:./mlruns)."),
    ] = None,
) -> None:
    """Run face -> chip -> embed -> classify for every branch, reusing unchanged stages.

    Example: bearid train pipeline.yaml --data splits --results results --set embed.steps=400
    """
    from bearid.cli.bars import Bars
    from bearid.training.config import read_sweep
    from bearid.training.train import train as run

    sweep = read_sweep(pipeline).with_overrides(setting or [])
    tracker = None
    if mlflow:
        from bearid.training.tracking import MlflowTracker

        tracker = MlflowTracker(mlflow, results_dir)
    with Bars(console) as bars:
        report = run(sweep, data, results_dir, bars, tracker=tracker)
    console.print(f"{len(report.computed)} stage(s) computed, {len(report.reused)} reused, {report.seconds:.0f} s")
    show_runs(results_dir, "open_set", False)
