"""The `bearid` command. Verbs are thin: each parses options and calls the library."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from bearid.cli import data, label, meta, serving, synth
from bearid.errors import BearIDError

app = typer.Typer(
    name="bearid",
    help="BearID: tell individual brown bears apart from photos, and manage the data behind it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("synth")(synth.synth)
app.command("validate")(meta.validate)
app.add_typer(data.app, name="data")
for verb in (serving.serve, serving.score, label.label):
    app.command(verb.__name__)(verb)


def _plugins() -> None:
    """Verbs from installed parts of BearID outside the core (training, exporters), found
    through the `bearid.commands` entry point, so the core never imports them."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="bearid.commands"):
        try:
            ep.load()(app)
        except ImportError:
            pass  # that part is not installed (e.g. no [train] extra)


_plugins()


def main() -> None:
    """Entry point: user errors become one clear message and exit status 2, never a traceback."""
    try:
        app()
    except BearIDError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {exc}", highlight=False
        )  # a path is never broken over lines
        sys.exit(2)
