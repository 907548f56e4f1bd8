"""`bearid train`: every stage of every branch of a sweep, reusing unchanged stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bearid.training.cli.common import console
from bearid.training.cli.runs import show_runs


def check_splits(data: Path) -> None:
    """--data holds train.xml, val.xml and test.xml (holdout.xml optional), each a faces XML
    that reads; checked before anything slow is imported or contacted."""
    from bearid.errors import BearIDError
    from bearid.metadata import read_faces

    if not data.is_dir():
        raise BearIDError(f"--data {data}: no such folder (make the splits with bearid data split)")
    missing = [n for n in ("train", "val", "test") if not (data / f"{n}.xml").is_file()]
    if missing:
        raise BearIDError(
            f"{data}: missing {', '.join(m + '.xml' for m in missing)} (make them with bearid data split)"
        )
    for name in ("train", "val", "test", "holdout"):
        if (data / f"{name}.xml").is_file():
            read_faces(data / f"{name}.xml")  # a damaged split is refused naming the file


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

    Every input (the pipeline file, --set, the splits in --data) is checked first, then the
    --mlflow tracking URI (a server must answer within 3 s), all before training starts.

    Example: bearid train pipeline.yaml --data splits --results results --set embed.steps=400
    """
    from bearid.cli.bars import Bars
    from bearid.training.config import read_sweep

    sweep = read_sweep(pipeline).with_overrides(setting or [])
    check_splits(data)
    tracker = None
    if mlflow:
        from bearid.training.tracking import MlflowTracker

        tracker = MlflowTracker(mlflow, results_dir)  # checks the URI, then contacts it
    from bearid.training.train import train as run  # torch: seconds to import, after the checks

    with Bars(console) as bars:
        report = run(sweep, data, results_dir, bars, tracker=tracker)
    console.print(f"{len(report.computed)} stage(s) computed, {len(report.reused)} reused, {report.seconds:.0f} s")
    show_runs(results_dir, "open_set", False)
