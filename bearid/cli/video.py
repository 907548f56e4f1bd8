"""`bearid video`: faces tracked through clips, one ID per track. Thin: the logic is in
bearid.video (identify, output)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bearid.cli.bars import Bars
from bearid.errors import BearIDError

console = Console()


def video(
    clips: Annotated[list[Path], typer.Argument(help="Video clips (MP4, MOV, AVI, MKV: what FFmpeg reads).")],
    out: Annotated[Path, typer.Option(help="Tracks as JSON lines; chips, keyframes and XML go beside it.")] = Path(
        "tracks.jsonl"
    ),
    bundle: Annotated[Path | None, typer.Option(help="Identify in this process with this bundle folder.")] = None,
    champion: Annotated[
        bool, typer.Option("--champion", help="Identify in this process with the model store's champion.")
    ] = False,
    chips: Annotated[
        bool, typer.Option("--chips", help="Also write the tracks' chips as training data (OUT_chips.xml).")
    ] = False,
    stride: Annotated[int, typer.Option(help="Search every Nth frame.", min=1)] = 1,
    every: Annotated[
        float, typer.Option(help="Search no two frames less than this many seconds apart (0: every frame).", min=0)
    ] = 0.0,
    start: Annotated[float, typer.Option(help="Seconds into each clip to start at (a seek).", min=0)] = 0.0,
    end: Annotated[float | None, typer.Option(help="Seconds into each clip to stop at.")] = None,
    min_change: Annotated[
        float, typer.Option(help="Skip frames that changed less than this from the last one searched (0-255).", min=0)
    ] = 0.0,
    triage: Annotated[
        bool, typer.Option(help="Look at a few frames first and skip a clip with no face in them.")
    ] = True,
    best: Annotated[int, typer.Option(help="Chips per track: it is named from them and writes them.", min=1)] = 5,
) -> None:
    """Find the bears in video clips: faces tracked through each clip, each track named once
    (its best chips embedded, pooled, classified with the open-set reject). A clip that
    cannot be read gets one error and the others go on; exit 2 when no clip could be read.

    Example: bearid video clips/*.mp4 --bundle bundle --out tracks.jsonl --chips
    """
    from bearid.errors import require, require_in_process

    require("video", "bearid video", "av")
    require_in_process()
    if bundle is None and not champion:
        raise BearIDError("give --bundle BUNDLE or --champion: the model that names the bears")
    from bearid.serving.offline import InProcess
    from bearid.video.identify import VideoOptions, identify_clip
    from bearid.video.output import write_outputs

    local = InProcess.chosen(bundle, champion)
    options = VideoOptions(
        stride=stride, every=every, start=start, end=end, min_change=min_change, triage=triage, best_chips=best
    )
    answers = []
    with Bars(console) as bars:
        tick = bars.ticker("clips", len(clips))
        for clip in clips:
            answer = identify_clip(local.pipeline, clip, options)  # type: ignore[union-attr]
            answers.append(answer)
            if answer.status == "error":
                bars(f"[bold red]error:[/] {escape(answer.error or '')}")
            for problem in answer.problems:
                bars(f"[yellow]warning:[/] {escape(problem)}")
            tick(1)
    written = write_outputs(answers, out, chips=chips)
    table = Table("clip", "status", "track", "from", "to", "frames", "bear", "familiarity")
    for a in answers:
        if not a.tracks:
            table.add_row(escape(str(a.clip)), a.status, "", "", "", "", "", "")
        for t in a.tracks:
            bear = t.bear_id or "unknown"
            table.add_row(
                escape(str(a.clip)),
                a.status,
                str(t.track),
                f"{t.first:.2f}",
                f"{t.last:.2f}",
                str(t.frames),
                bear,
                f"{t.familiarity:.3f}",
            )
    console.print(table)
    extra = [p for p in (written.keyframes_xml, written.chips_xml) if p]
    errors = sum(a.status == "error" for a in answers)
    console.print(
        f"{len(answers)} clips: {sum(len(a.tracks) for a in answers)} tracks, "
        f"{sum(a.status == 'no_bear' for a in answers)} with no bear, {errors} unreadable. "
        f"Wrote {out}" + "".join(f", {p}" for p in extra),
        highlight=False,
    )
    if errors == len(answers):
        raise typer.Exit(2)
