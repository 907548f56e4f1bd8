"""`bearid ids ...`: merge two bear IDs that are one bear, split faces off as a new bear, undo
either. Thin: the logic is in bearid.label.operations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bearid.errors import BearIDError

app = typer.Typer(help="Bear IDs: merge, split, undo, file (photos under their bear), list.")
console = Console()

XmlArg = Annotated[Path, typer.Argument(help="The imglab XML (it must not be open in `bearid label` now).")]
Curator = Annotated[str, typer.Option(help="Your name: it is recorded with the change.")]
Archive = Annotated[
    Path | None, typer.Option(help="The archive root: plan (or, with --apply, make) the folder moves that follow.")
]
Apply = Annotated[bool, typer.Option("--apply", help="Move the files (default: only show the plan).")]


@contextlib.contextmanager
def _opened(xml: Path) -> Iterator:
    from bearid.label.store import LabelStore

    if not xml.is_file():
        raise BearIDError(f"{xml}: no such XML file")
    store = LabelStore(xml)
    try:
        yield store
    finally:
        store.close()


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

    with _opened(xml) as store:
        _say(operations.merge(store, keep, gone, curator, archive, apply), apply)


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
    with _opened(xml) as store:
        out = operations.split(store, chosen, prefix, curator, name, archive, apply)
        console.print(f"new bear {out.op['new']} (from {out.op['from']})")
        _say(out, apply)


@app.command("file")
def file_photos(xml: XmlArg, archive: Annotated[Path, typer.Option(help="The archive root.")], curator: Curator,
                apply: Apply = False) -> None:  # fmt: skip
    """File the photos under the bears the XML names on them: after a review named new bears,
    photos in bear_unknown/ move to their bear's folder (a plan, unless --apply).

    Example: bearid ids file season2.xml --archive ROOT --curator anna --apply
    Undo: bearid data restore ROOT --batch BATCH
    """
    from bearid.label import operations

    with _opened(xml) as store:
        out = operations.file_photos(store, archive, curator, apply)
        for m in out.moves:
            console.print(f"  {'moved' if apply else 'would move'} {m.path} -> {m.to}")
        for path, why in out.skipped:
            console.print(f"  [yellow]left {path}: {why}[/]")
        console.print(
            f"{len(out.moved)} photo(s) filed; undo with: bearid data restore {archive} --batch {out.op['id']}"
            if apply
            else f"{len(out.moves)} photo(s) to file: run again with --apply"
        )


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

    with _opened(xml) as store:
        out = operations.undo(store, op, curator, archive)
        console.print(
            f"undid {op}: {out.op['faces']} face(s) on {out.op['photos']} photo(s); {len(out.moved)} file(s) back"
        )
        if out.op["left_as_changed_since"]:
            console.print(f"  [yellow]{out.op['left_as_changed_since']} face(s) changed since were left as they are[/]")


@app.command("list")
def list_ops(xml: XmlArg) -> None:
    """Merges, splits and undos of this XML, oldest first.

    Example: bearid ids list faces.xml
    """
    with _opened(xml) as store:
        for op in store.operations():
            what = {"merge": f"{op.get('gone')} -> {op.get('keep')}", "split": f"{op.get('from')} -> {op.get('new')}"}
            console.print(f"{op['id']}  {op['kind']:5}  {what.get(op['kind'], op.get('of', ''))}  by {op['volunteer']}")
