"""`bearid ids ...`: merge two bear IDs that are one bear, split faces off as a new bear, undo
either. Thin: the logic is in bearid.label.operations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bearid.errors import BearIDError

app = typer.Typer(help="Bear IDs: merge, split, undo (the XML journalled; archive folders as a plan).")
console = Console()

XmlArg = Annotated[Path, typer.Argument(help="The imglab XML (it must not be open in `bearid label` now).")]
Curator = Annotated[str, typer.Option(help="Your name: it is recorded with the change.")]
Archive = Annotated[
    Path | None, typer.Option(help="The archive root: plan (or, with --apply, make) the folder moves that follow.")
]
Apply = Annotated[bool, typer.Option("--apply", help="Move the files (default: only show the plan).")]


def _open(xml: Path):
    from bearid.label.store import LabelStore

    if not xml.is_file():
        raise BearIDError(f"{xml}: no such XML file")
    return LabelStore(xml)


def _say(out, apply: bool) -> None:
    op = out.op
    console.print(f"{op['kind']} {op['id']}: {op['faces']} face(s) on {op['photos']} photo(s) relabelled")
    for m in out.moves:
        console.print(f"  {'moved' if apply else 'would move'} {m.path} -> {m.to}")
    for path, why in out.skipped:
        console.print(f"  [yellow]left {path}: {why}[/]")
    if out.moves and not apply:
        console.print("Nothing moved: run again with --apply to file the photos under their bear.")


@app.command()
def merge(
    xml: XmlArg,
    keep: Annotated[str, typer.Argument(help="The bear ID that stays, e.g. bf_051.")],
    gone: Annotated[str, typer.Argument(help="The bear ID that turns out to be the same bear.")],
    curator: Curator,
    archive: Archive = None,
    apply: Apply = False,
) -> None:
    """Two IDs are one bear: every face of GONE becomes KEEP's.

    Example: bearid ids merge faces.xml bf_051 bf_977 --curator anna --archive ROOT
    """
    from bearid.label import operations

    store = _open(xml)
    try:
        _say(operations.merge(store, keep, gone, curator, archive, apply), apply)
    finally:
        store.close()


@app.command()
def split(
    xml: XmlArg,
    faces: Annotated[str, typer.Option(help="The faces to split off, PHOTO:FACE,... (numbers from 0).")],
    prefix: Annotated[str, typer.Option(help="The new bear's ID prefix, e.g. bf.")],
    curator: Curator,
    name: Annotated[str | None, typer.Option(help="The new bear's name.")] = None,
    archive: Archive = None,
    apply: Apply = False,
) -> None:
    """Some faces of one bear are another bear: they get the next free ID.

    Example: bearid ids split faces.xml --faces 12:0,40:1 --prefix bf --curator anna
    """
    from bearid.label import operations

    try:
        chosen = [(int(a), int(b)) for a, _, b in (item.partition(":") for item in faces.split(",") if item)]
    except ValueError:
        raise BearIDError(f"--faces {faces!r}: expected PHOTO:FACE,... e.g. 12:0,40:1") from None
    store = _open(xml)
    try:
        out = operations.split(store, chosen, prefix, curator, name, archive, apply)
        console.print(f"new bear {out.op['new']} (from {out.op['from']})")
        _say(out, apply)
    finally:
        store.close()


@app.command()
def undo(
    xml: XmlArg,
    op: Annotated[str, typer.Argument(help="The operation's id (bearid ids list).")],
    curator: Curator,
    archive: Archive = None,
) -> None:
    """Undo a merge or a split: the IDs back where no one changed them since, the files back.

    Example: bearid ids undo faces.xml 20261201T101500-a1b2c3 --curator anna --archive ROOT
    """
    from bearid.label import operations

    store = _open(xml)
    try:
        out = operations.undo(store, op, curator, archive)
        console.print(
            f"undid {op}: {out.op['faces']} face(s) on {out.op['photos']} photo(s); {len(out.moved)} file(s) back"
        )
        if out.op["left_as_changed_since"]:
            console.print(f"  [yellow]{out.op['left_as_changed_since']} face(s) changed since were left as they are[/]")
    finally:
        store.close()


@app.command("list")
def list_ops(xml: XmlArg) -> None:
    """Merges, splits and undos of this XML, oldest first.

    Example: bearid ids list faces.xml
    """
    store = _open(xml)
    try:
        for op in store.operations():
            what = {"merge": f"{op.get('gone')} -> {op.get('keep')}", "split": f"{op.get('from')} -> {op.get('new')}"}
            console.print(f"{op['id']}  {op['kind']:5}  {what.get(op['kind'], op.get('of', ''))}  by {op['volunteer']}")
    finally:
        store.close()
