"""`bearid book`: the bear book, a static HTML catalogue. Thin: the logic is in bearid.book."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bearid.errors import BearIDError

console = Console()


def book(
    root: Annotated[Path, typer.Argument(help="The archive root (its bear folders and cub folders).")],
    out: Annotated[Path, typer.Option(help="The folder to write the book to (index.html and chips/).")],
    faces: Annotated[
        Path | None, typer.Option(help="A faces XML naming the bears on the photos: their faces become the chips.")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="A bundle: look-alikes by embedding, and its chip layout.")
    ] = None,
    champion: Annotated[bool, typer.Option("--champion", help="The model store's champion, for look-alikes.")] = False,
    title: Annotated[str, typer.Option(help="The book's title.")] = "Bear book",
) -> None:
    """Write the bear book: a card per bear with reference chips, sightings by year, location and
    contributor, first and last seen, photos per season, look-alikes and cubs.

    Example: bearid book ROOT --faces ROOT/_truth/faces.xml --bundle bundle --out book
    """
    from bearid import book as books
    from bearid import cards as bear_cards
    from bearid.chip import ChipSpec
    from bearid.metadata import read_faces

    if not root.is_dir():
        raise BearIDError(f"{root}: no such archive folder")
    if out.exists() and not out.is_dir():
        raise BearIDError(f"{out} is a file, not a folder")
    dataset = read_faces(faces) if faces else None
    local = None
    if bundle is not None or champion:  # the [serve] extra; without a model, the base install is enough
        from bearid.errors import require_in_process

        require_in_process()
        from bearid.serving.offline import InProcess

        local = InProcess.chosen(bundle, champion)
    pipeline = local.pipeline if local is not None else None
    spec = pipeline.chip_spec if pipeline else ChipSpec()
    found = bear_cards.cards(root, dataset, parts=spec.points)
    if pipeline is not None and dataset is not None:
        bear_cards.lookalikes(found, dataset, pipeline)
    page = books.write(found, dataset, out, spec, title, root)
    console.print(f"{len(found)} bears: {page}")
