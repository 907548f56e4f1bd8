"""`bearid synth`: make a synthetic bear world."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bearid.cli.bars import Bars
from bearid.synth import WorldConfig, config_with, default_workers, synthesize
from bearid.synth.world import SHOTS

console = Console()

Shots = enum.Enum("Shots", {name.replace("-", "_"): name for name in SHOTS}, type=str)


def synth(
    out: Annotated[Path, typer.Argument(help="Directory to create the source tree in (new or empty).")],
    bears: Annotated[int, typer.Option(help="Number of identified bears.")] = 12,
    photos: Annotated[int, typer.Option(help="Number of photos in the tree.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same world.")] = 0,
    shots: Annotated[
        Shots, typer.Option(help="Photos per bear: skewed, or long-tail (a few bears hold most, as in real archives).")
    ] = Shots.skewed,  # type: ignore[attr-defined]
    messy: Annotated[
        bool,
        typer.Option(help="Also plant what real drops hold: a differently shaped drop, duplicates, corrupt files, ..."),
    ] = False,
    difficulty: Annotated[
        float, typer.Option(help="Scale pose, blur, occlusion, light and look-alike knobs (1 = default).")
    ] = 1.0,
    setting: Annotated[
        list[str] | None, typer.Option("--set", help="Override one knob, e.g. --set max_yaw=50 --set max_side=1200.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Processes rendering photos (0 = one per core).")] = 0,
    contact_sheet: Annotated[
        Path | None, typer.Option(help="Also save a PNG of faces with their ground truth drawn.")
    ] = None,
    videos: Annotated[
        int,
        typer.Option(help="Also write this many short clips of the bears (OUT/_videos, truth in OUT/_truth).", min=0),
    ] = 0,
) -> None:
    """Make a synthetic bear world: a source tree of photos plus ground truth.

    Example: bearid synth world --bears 12 --photos 200 --seed 1 --messy --contact-sheet sheet.png
    Clips too: bearid synth world --bears 12 --photos 200 --videos 8
    """
    config = WorldConfig(bears=bears, photos=photos, seed=seed, shots=shots.value).harder(difficulty)
    config = config_with(config, setting or [])
    with Bars(console) as bars:
        report = synthesize(
            config,
            out,
            messy=messy,
            workers=workers or default_workers(),
            progress=bars.ticker("rendering photos", photos),
        )
    print_report(report)
    if videos:
        from bearid.errors import require

        require("video", "bearid synth --videos", "av")
        from bearid.video.synth import write_videos

        with Bars(console) as bars:
            clips = write_videos(config, out, videos, progress=bars.ticker("rendering clips", videos))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(clips.per_kind.items()))
        console.print(f"{clips.clips} clips ({kinds}), {clips.frames} frames, {clips.faces} faces: {out / '_videos'}")
    if contact_sheet:
        from bearid.metadata import read_faces
        from bearid.synth.contact import contact_sheet as draw_sheet

        sheet = draw_sheet(read_faces(out / "_truth" / "faces.xml"), contact_sheet)
        console.print(f"contact sheet: {sheet}")


def print_report(report) -> None:
    table = Table(title=f"synthetic world in {report.root}", show_header=False)
    table.add_row("bears", str(report.bears))
    table.add_row("photos", str(report.photos))
    table.add_row("faces", str(report.faces))
    for loc, n in sorted(report.per_location.items()):
        table.add_row(f"  photos at {loc}", str(n))
    for kind, n in sorted(report.per_kind.items()):
        table.add_row(f"  {kind} photos", str(n))
    if report.planted:
        table.add_row("planted defects (--messy)", ", ".join(f"{k} {v}" for k, v in sorted(report.planted.items())))
        table.add_row("  listed in", str(report.root / "_truth" / "messy.json"))
    table.add_row(
        "time",
        f"{report.seconds:.1f} s ({report.photos_per_second:.1f} photos/s, "
        f"{report.megapixels / max(1, report.photos):.2f} MP/photo)",
    )
    table.add_row("ground truth", str(report.root / "_truth" / "faces.xml"))
    console.print(table)
