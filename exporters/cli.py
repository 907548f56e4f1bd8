"""The model-handling verbs of the `bearid` command: export, promote, rollback, models
(registered through the `bearid.commands` entry point)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

console = Console()

# The library's choices (bearid.training.runs.MEASURES, bearid.exporters.promotion.METRICS),
# here so that -h lists them without importing the library (tests check they agree).
Measure = Literal["open_set", "top1", "baks", "baus", "auroc"]
Metric = Literal["open_set", "baks", "baus", "top1", "face_recall"]


def _log(message: str) -> None:
    console.print(message, highlight=False)


def export(
    path: Annotated[
        Path | None,
        typer.Argument(help="A results path ending in a class config. Default: the best path of --results."),
    ] = None,
    out: Annotated[Path, typer.Option(help="The bundle directory to write.")] = Path("bundle"),
    results_dir: Annotated[
        Path | None, typer.Option("--results", help="Export the best path of this results tree.")
    ] = None,
    by: Annotated[
        Measure,
        typer.Option(help="With --results: best by this validation figure: open_set, top1, baks, baus or auroc."),
    ] = "open_set",
    parity_photos: Annotated[int, typer.Option(help="Test photos answered by both runtimes in the parity check.")] = 12,
) -> None:
    """Export a results path as a bundle: ONNX networks, classifier, manifest with checksums.

    Example: bearid export results/face_config_01/chip_config_01/embed_config_01/class_config_01 --out bundle
    """
    from bearid.errors import BearIDError
    from bearid.exporters.export import best_exportable
    from bearid.exporters.export import export as run

    if path is None:
        if results_dir is None:
            raise BearIDError("give a results path, or --results RESULTS to export its best path")
        path = best_exportable(results_dir, by)
        _log(f"export: the best exportable path by validation {by}: {path}")
    from bearid.cli.bars import Bars

    with Bars(console) as bars:
        manifest = run(path, out, parity_photos, bars)
    m = manifest.get("metrics", {}).get("classify", {})
    console.print(
        f"bundle {manifest['version']} at {out} (test top-1 "
        f"{m.get('top1')}, BAKS {m.get('baks')}, BAUS {m.get('baus')})"
    )


def promote(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder (from bearid export).")],
    gate: Annotated[
        list[Path] | None, typer.Option(help="Faces XML with bear labels to compare on (repeat for several).")
    ] = None,
    metric: Annotated[
        Metric, typer.Option(help="Compare by open_set (mean of BAKS and BAUS), baks, baus, top1 or face_recall.")
    ] = "open_set",
    force: Annotated[
        bool, typer.Option(help="Promote even if the champion does better (or without a gate set).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Use at most this many gate photos (0: all).")] = 0,
    accept_open_set_risk: Annotated[
        bool,
        typer.Option(help="Promote even if its open-set reject misses its false-accept target (recorded)."),
    ] = False,
) -> None:
    """Verify a bundle, compare it with the champion on a gate set, store it as bearid:<version>
    and make it champion. A running service switches to it without a restart.

    Example: bearid promote bundle --gate splits/test.xml --gate splits/holdout.xml
    """
    from bearid.exporters.promotion import promote as run
    from bearid.serving.store import ModelStore

    r = run(bundle, list(gate or []), ModelStore(), metric, force, limit, accept_open_set_risk)
    if r.candidate:
        columns = ["gate", "candidate " + r.version, "champion " + (r.champion_version or "(none)")]
        rows = [r.candidate, r.champion or {}]
        if r.left_out and r.compared:  # the compared figures leave out bears only one model knows
            columns += ["candidate, compared", "champion, compared"]
            rows += list(r.compared)
        table = Table(*columns)
        for key in ("photos", "face_recall", "top1", "baks", "baus", "open_set", "false_accept"):
            table.add_row(key, *(str(row.get(key, "")) for row in rows))
        console.print(table)
        if r.left_out:
            console.print(f"compared on the bears both know or neither; known to one only: {', '.join(r.left_out)}")
    console.print(
        ("[green]promoted[/] " if r.promoted else "[yellow]not promoted[/] ") + f"{r.version}: {r.reason}",
        highlight=False,
    )
    if not r.promoted and r.reason != "already the champion":
        raise typer.Exit(1)


def rollback() -> None:
    """Make the previous champion champion again (a running service follows).

    Example: bearid rollback
    """
    from bearid.serving.store import ModelStore

    version = ModelStore().rollback()
    console.print(f"champion is now {version}")


def models() -> None:
    """The champion, the promoted bundles and the history of promotions and rollbacks.

    Example: bearid models
    """
    from bearid.serving.store import ModelStore, models_home

    store = ModelStore()
    print(
        json.dumps(
            {"store": str(store.home), "models": str(models_home()), "versions": store.versions(), **store.state()},
            indent=1,
        )
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    for verb in (promote, rollback, models):
        app.command(verb.__name__)(verb)
