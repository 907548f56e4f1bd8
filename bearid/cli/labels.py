"""`bearid labels export|import`: faces to and from COCO keypoints, CVAT, Label Studio and
FiftyOne. Thin: the logic is in bearid.labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Labels to and from CVAT, Label Studio, COCO keypoints and FiftyOne.")
console = Console()

# bearid.labels.FORMATS, here so that -h lists them (tests check they agree).
Format = Annotated[
    Literal["coco-keypoints", "cvat", "labelstudio", "fiftyone"],
    typer.Option(
        "--format",
        help="coco-keypoints (JSON), cvat (for images 1.1 XML), labelstudio (JSON tasks), "
        "fiftyone (a FiftyOneDataset folder).",
    ),
]
Root = Annotated[
    Path | None,
    typer.Option(help="Photos are named relative to this folder (default: the XML's folder)."),
]


def _said(dropped: dict[str, int], what: str) -> None:
    for reason, n in sorted(dropped.items()):
        console.print(f"  [yellow]{what}: {escape(reason)} ({n})[/]")


@app.command("export")
def export(
    xml: Annotated[Path, typer.Argument(help="The imglab XML to export.")],
    fmt: Format,
    out: Annotated[Path, typer.Option(help="The file to write (for fiftyone: the dataset's folder).")],
    root: Root = None,
) -> None:
    """Write an XML's faces in another tool's format; say what it did not carry.

    The file is read back and compared with the XML face by face.

    Example: bearid labels export faces.xml --format cvat --out faces.cvat.xml
    """
    from bearid.labels import export_labels

    report = export_labels(xml, fmt, out, root)
    console.print(f"{report.photos} photo(s), {report.faces} face(s) written to {escape(str(report.out))}")
    for path in report.also:
        console.print(f"  and {escape(str(path))}")
    if report.dropped:
        _said(report.dropped, "not carried")
    else:
        console.print("  read back: nothing lost")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="The labels file (for fiftyone: the dataset's folder).")],
    fmt: Format,
    into: Annotated[Path, typer.Option(help="The imglab XML to take them into (not open in `bearid label` now).")],
    curator: Annotated[str, typer.Option(help="Your name: it is recorded with the change.")],
    root: Root = None,
    base: Annotated[
        Path | None,
        typer.Option(
            help="The file `bearid labels export` wrote, when SOURCE lost its record of it (CVAT's own export)."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Take faces over photos the file has no export record of.")
    ] = False,
) -> None:
    """Take faces from another tool's file into an XML, as one undoable operation.

    `bearid ids undo XML OPERATION` reverts it; photos changed since the export are reported
    and left as they are.

    Example: bearid labels import task.xml --format cvat --into faces.xml --curator anna
    """
    from bearid.labels import import_labels

    report = import_labels(source, fmt, into, curator, root=root, base=base, replace=replace)
    op = report.op
    if op:
        console.print(f"import {op['id']}: {op['faces']} face(s) on {op['photos']} photo(s) taken")
        console.print(f"  undo with: bearid ids undo {escape(str(into))} {op['id']} --curator {escape(curator)}")
    else:
        console.print("nothing to change")
    console.print(f"  {report.unchanged} photo(s) already as the file has them")
    for line in report.conflicts:
        console.print(f"  [yellow]conflict: {escape(line)}[/]")
    if report.not_in_xml:
        console.print(f"  [yellow]{len(report.not_in_xml)} photo(s) not in the XML, left out[/]")
    _said(report.dropped, "not taken")
