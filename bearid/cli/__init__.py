"""The `bearid` command. Verbs are thin: each parses options and calls the library."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from bearid import __version__
from bearid.cli import accounts, book, data, ids, label, labels, meta, serving, synth, video
from bearid.errors import BearIDError


def _version(value: bool) -> None:
    if value:
        print(f"bearid {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="bearid",
    help="BearID: tell individual brown bears apart from photos, and manage the data behind it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """BearID: tell individual brown bears apart from photos, and manage the data behind it."""
    from bearid.settings import Settings

    Settings.from_env()  # every environment variable checked once, before any verb: a bad one is exit 2


app.command("synth")(synth.synth)
app.command("validate")(meta.validate)
app.add_typer(data.app, name="data")
app.add_typer(ids.app, name="ids")
app.add_typer(accounts.app, name="accounts")
app.add_typer(labels.app, name="labels")
for verb in (serving.serve, serving.bento, serving.score, label.label, book.book, video.video):
    app.command(verb.__name__)(verb)

# Parts of BearID whose verbs could not be loaded (name -> why), and the verbs each brings.
_missing: dict[str, str] = {}
_VERBS = {
    "training": ("train", "import-dlib", "runs", "face", "chip", "embed", "classify"),
    "exporters": ("export", "promote", "rollback", "models"),
}
_EXTRAS = {"training": "train", "exporters": "train"}
_EXTRA_OF = {
    "torch": "train",
    "sklearn": "train",
    "dlib": "train",
    "onnx": "train",
    "matplotlib": "data",
    "bentoml": "serve",
    "onnxruntime": "serve",
    "prometheus_client": "serve",
    "starlette": "label",
    "uvicorn": "label",
    "mlflow": "mlflow",
}


def _plugins() -> None:
    """Verbs from installed parts of BearID outside the core (training, exporters), found
    through the `bearid.commands` entry point, so the core never imports them. A part that
    cannot load (its extra is not installed) leaves its verbs in place, each saying why."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="bearid.commands"):
        try:
            ep.load()(app)
        except ImportError as exc:
            extra = _EXTRAS.get(ep.name)
            _missing[ep.name] = f"{exc}" + (f" (install bearid[{extra}])" if extra else "")
            for verb in _VERBS.get(ep.name, ()):
                app.command(
                    verb,
                    help=escape(f"Not available: {_missing[ep.name]}"),
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                )(_unavailable(ep.name))


def _unavailable(part: str):
    def verb(ctx: typer.Context) -> None:
        raise BearIDError(f"the {part} verbs could not be loaded: {_missing[part]}")

    return verb


_plugins()


def main() -> None:
    """Entry point: user errors become one clear message and exit status 2, never a traceback."""
    console = Console(stderr=True, soft_wrap=True)  # a path is never broken over lines

    def say(message: str) -> None:
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)

    try:
        app()
    except BearIDError as exc:
        say(str(exc))
        sys.exit(2)
    except ImportError as exc:  # a verb whose extra is not installed
        extra = _EXTRA_OF.get((exc.name or "").split(".")[0])
        hint = f"pip install 'bearid[{extra}]'" if extra else "install the extra this verb needs"
        say(f"this verb needs what is not installed here ({exc}): {hint}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[bold red]stopped[/] (interrupted): running the same command again is safe", highlight=False)
        sys.exit(130)
    except OSError as exc:  # a permission, a full disk, a vanished file: the file and the reason
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"{where}{exc.strerror or exc}")
        sys.exit(2)
