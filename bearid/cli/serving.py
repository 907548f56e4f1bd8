"""Serving verbs: serve and score. Thin: the logic is in bearid.serving.localserver, bearid.score,
bearid.client and service/service.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bearid.cli.bars import Bars

console = Console()


def serve(
    bundle: Annotated[
        Path | None, typer.Option(help="Serve this bundle folder instead of the model store's champion.")
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int, typer.Option(help="Worker processes (ONNX Runtime threads are shared out among them).", min=1)
    ] = 1,
) -> None:
    """Serve the champion (or a bundle) over HTTP with BentoML: /identify, /identify_batch,
    /model, /metrics, /readyz, /livez.

    Example: bearid serve --port 3000 --workers 2
    """
    from bearid.serving.localserver import serve_command

    if bundle is not None:
        from bearid.serving.bundle import verify

        verify(bundle)  # refuse a missing or damaged bundle now, not in every worker
    argv, env = serve_command(port, host, workers, bundle)
    # Become the server (no child left behind when a supervisor stops us with a signal).
    os.execve(argv[0], argv, env)


def bento(
    version: Annotated[
        str | None, typer.Option(help="The promoted bundle the bento carries (default: the champion).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes the bento declares and runs.", min=1)] = 1,
    export: Annotated[
        Path | None, typer.Option(help="Also write it, with its model, as one archive (bentoml export).")
    ] = None,
) -> None:
    """Build a bento (BentoML) that carries a promoted bundle and serves it with no model store;
    `bentoml containerize` then makes a container image of it.

    Example: bearid bento --workers 2 && bentoml containerize bearid_service:latest
    """
    from bearid.serving import bento as bentos

    tag = bentos.build(version, workers)
    console.print(tag)
    if export is not None:
        console.print(f"written {bentos.export(tag, export)}")


def score(
    photos: Annotated[
        Path, typer.Argument(help="Folder of photos (searched recursively), or a faces XML listing them.")
    ],
    url: Annotated[str, typer.Option(help="The BearID service.")] = "http://127.0.0.1:3000",
    out: Annotated[
        Path, typer.Option(help="Results journal (JSON Lines); .xml and .csv are written beside it.")
    ] = Path("results.jsonl"),
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1)] = 4,
    truth: Annotated[
        Path | None, typer.Option(help="A faces XML with bear labels: report accuracy against it.")
    ] = None,
    table: Annotated[bool, typer.Option(help="Print a table with one row per photo.")] = False,
    bundle: Annotated[
        Path | None, typer.Option(help="Score in this process with this bundle folder: no service, no network.")
    ] = None,
    champion: Annotated[
        bool, typer.Option("--champion", help="Score in this process with the model store's champion.")
    ] = False,
) -> None:
    """Identify every photo of a folder through the service (or in this process, with --bundle
    or --champion). Re-running skips photos already answered by the same model; results.xml
    opens in the labeling tool, results.csv counts photos per bear.

    Example: bearid score photos/ --url http://127.0.0.1:3000 --out results.jsonl
    Offline: bearid score photos/ --bundle bundles/v3 --out results.jsonl
    """
    from contextlib import nullcontext

    from bearid.client import BearIDClient
    from bearid.metadata import read_faces
    from bearid.score import accuracy, read_journal
    from bearid.score import score as run

    labelled = read_faces(truth) if truth else None  # a bad --truth is refused before any photo is sent
    local = None
    if bundle is not None or champion:  # the [serve] extra; through the service, the base install is enough
        from bearid.errors import require_in_process

        require_in_process()
        from bearid.serving.offline import InProcess

        local = InProcess.chosen(bundle, champion)
    scorer = nullcontext(local) if local is not None else BearIDClient(url)
    with scorer as client, Bars(console) as bars:
        report = run(photos, client, out, concurrency, bars.counter("scoring"))
    model = report.model
    again = f" ({report.outdated} of them answered before by another model)" if report.outdated else ""
    console.print(
        f"{report.photos} photos: {report.scored} scored now{again}, "
        f"{report.skipped} already scored, {report.errors} errors; "
        f"{report.faces} faces. Wrote {out}, {report.xml}, {report.csv} (model {model.get('version')})",
        highlight=False,
    )
    rows = read_journal(out)
    if table:
        t = Table("photo", "faces", "bears")
        for photo, row in sorted(rows.items()):
            faces = row.get("answer", {}).get("faces", [])
            t.add_row(
                photo,
                str(len(faces)) if "answer" in row else "error",
                ", ".join(f["bear_id"] or "unknown" for f in faces) if "answer" in row else row.get("error", ""),
            )
        console.print(t)
    if labelled is not None:
        m = accuracy(rows, report.base, labelled, set(model.get("ids", [])))
        console.print("accuracy: " + ", ".join(f"{k} {v}" for k, v in m.items()), highlight=False)
    if report.errors:
        raise typer.Exit(1)
