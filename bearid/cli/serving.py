"""Serving verbs: promote, rollback, serve, score. Thin: the logic is in bearid.promotion,
bearid.store, bearid.score and service/service.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bearid.errors import BearIDError

console = Console()
SERVICE_DIR = Path(__file__).resolve().parents[2]  # the checkout: service/service.py lives there


def promote(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder (from bearid export).")],
    gate: Annotated[Optional[list[Path]], typer.Option(help="Faces XML with bear labels to compare on (repeat for several).")] = None,
    metric: Annotated[str, typer.Option(help="Compare by open_set (mean of BAKS and BAUS), baks, baus, top1 or face_recall.")] = "open_set",
    force: Annotated[bool, typer.Option(help="Promote even if the champion does better (or without a gate set).")] = False,
    limit: Annotated[int, typer.Option(help="Use at most this many gate photos (0: all).")] = 0,
) -> None:
    """Verify a bundle, compare it with the champion on a gate set, store it as bearid:<version>
    and make it champion. A running service switches to it without a restart.

    Example: bearid promote bundle --gate splits/test.xml --gate splits/holdout.xml
    """
    from bearid.promotion import promote as run
    from bearid.store import ModelStore

    r = run(bundle, list(gate or []), ModelStore(), metric, force, limit)
    if r.candidate:
        table = Table("gate", "candidate " + r.version, "champion " + (r.champion_version or "(none)"))
        for key in ("photos", "face_recall", "top1", "baks", "baus", "open_set"):
            table.add_row(key, str(r.candidate.get(key)), str((r.champion or {}).get(key, "")))
        console.print(table)
    console.print(("[green]promoted[/] " if r.promoted else "[yellow]not promoted[/] ") + f"{r.version}: {r.reason}", highlight=False)
    if not r.promoted and r.reason != "already the champion":
        raise typer.Exit(1)


def rollback() -> None:
    """Make the previous champion champion again (a running service follows).

    Example: bearid rollback
    """
    from bearid.store import ModelStore

    version = ModelStore().rollback()
    console.print(f"champion is now {version}")


def models() -> None:
    """The champion, the promoted bundles and the history of promotions and rollbacks.

    Example: bearid models
    """
    from bearid.store import ModelStore

    store = ModelStore()
    print(json.dumps({"store": str(store.home), "versions": store.versions(), **store.state()}, indent=1))


def serve(
    bundle: Annotated[Optional[Path], typer.Option(help="Serve this bundle folder instead of the model store's champion.")] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Worker processes (ONNX Runtime threads are shared out among them).")] = 1,
) -> None:
    """Serve the champion (or a bundle) over HTTP with BentoML: /identify, /identify_batch,
    /model, /metrics, /readyz, /livez.

    Example: bearid serve --port 3000 --workers 2
    """
    if not (SERVICE_DIR / "service" / "service.py").exists():
        raise BearIDError(f"service/service.py not found under {SERVICE_DIR}; run from a BearID checkout")
    env = dict(os.environ, BEARID_WORKERS=str(workers), BENTOML_DO_NOT_TRACK="True")
    if bundle:
        env["BEARID_BUNDLE"] = str(bundle.resolve())
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:BearID", "--port", str(port), "--host", host,
           "--working-dir", str(SERVICE_DIR)]
    raise typer.Exit(subprocess.call(cmd, env=env))


def score(
    photos: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).")],
    url: Annotated[str, typer.Option(help="The BearID service.")] = "http://127.0.0.1:3000",
    out: Annotated[Path, typer.Option(help="Results journal (JSON Lines); .xml and .csv are written beside it.")] = Path("results.jsonl"),
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 4,
    truth: Annotated[Optional[Path], typer.Option(help="A faces XML with bear labels: report accuracy against it.")] = None,
    table: Annotated[bool, typer.Option(help="Print a table with one row per photo.")] = False,
) -> None:
    """Identify every photo of a folder through the service. Re-running skips photos already
    answered; results.xml opens in the labeling tool, results.csv counts photos per bear.

    Example: bearid score photos/ --url http://127.0.0.1:3000 --out results.jsonl
    """
    from bearid.client import BearIDClient
    from bearid.score import accuracy, photos_in, read_journal, score as run

    total = len(photos_in(photos))
    with BearIDClient(url) as client, Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                               console=console, transient=True) as bar:
        task = bar.add_task("score", total=total)
        report = run(photos, client, out, concurrency, lambda n: bar.advance(task, n))
        model = client.model()
    console.print(f"{report.photos} photos: {report.scored} scored now, {report.skipped} already scored, {report.errors} errors; "
                  f"{report.faces} faces. Wrote {out}, {report.xml}, {report.csv} (model {model.get('version')})", highlight=False)
    rows = read_journal(out)
    if table:
        t = Table("photo", "faces", "bears")
        for photo, row in sorted(rows.items()):
            faces = row.get("answer", {}).get("faces", [])
            t.add_row(photo, str(len(faces)) if "answer" in row else "error",
                      ", ".join(f["bear_id"] or "unknown" for f in faces) if "answer" in row else row.get("error", ""))
        console.print(t)
    if truth:
        m = accuracy(rows, photos, truth, set(model.get("ids", [])))
        console.print("accuracy: " + ", ".join(f"{k} {v}" for k, v in m.items()), highlight=False)
    if report.errors:
        raise typer.Exit(1)
