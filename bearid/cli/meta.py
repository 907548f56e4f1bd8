"""`bearid validate`: check imglab faces XML files and say what a stage cannot use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bearid.metadata import read_faces
from bearid.metadata import validate as validate_faces

console = Console()


def validate(
    files: Annotated[list[Path], typer.Argument(help="imglab XML files to check.")],
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
) -> None:
    """Check faces XML files: unknown parts, missing landmarks, bad boxes, missing labels.

    Example: bearid validate world/_truth/faces.xml
    Exit status: 0 clean, 1 problems found, 2 a file could not be read.
    """
    bad = False
    for path in files:
        dataset = read_faces(path)
        findings = validate_faces(dataset, path)
        faces = sum(len(i.boxes) for i in dataset.images)
        for f in findings:
            console.print(str(f), style="red" if f.severity == "error" else "yellow", highlight=False)
        errors = sum(f.severity == "error" for f in findings)
        warnings = len(findings) - errors
        console.print(
            f"{path}: {len(dataset.images)} images, {faces} faces, {errors} errors, {warnings} warnings",
            highlight=False,
        )
        bad |= errors > 0 or (strict and warnings > 0)
    raise typer.Exit(1 if bad else 0)
