"""Write docs/reference/cli.md from the `bearid` Typer app, so the CLI reference cannot drift.

    .venv/bin/python scripts/gen_reference.py            # rewrite docs/reference/cli.md
    .venv/bin/python scripts/gen_reference.py --out F    # write it elsewhere (the drift test)

The Markdown is Typer's own (`typer utils docs`: `typer.cli.get_docs_for_click`), given a
context made from the app itself, so `-h, --help` and the markup mode are the app's, not the
`typer` command's. The client's reference needs no script: mkdocstrings reads bearid.client.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
NOTE = (
    "This page is generated from the `bearid` command itself by `scripts/gen_reference.py`; "
    "do not edit it by hand, run the script again after changing a verb."
)


def cli_reference() -> str:
    """The CLI reference page: Typer's Markdown for every verb, with a note on where it comes from."""
    import typer.main
    from typer.cli import get_docs_for_click
    from typer.core import MARKUP_MODE_KEY

    from bearid.cli import _missing, app

    if _missing:  # the page would document "Not available" stubs instead of the verbs
        raise SystemExit(f"cannot write the CLI reference: {_missing} (install every extra: make venv)")
    command = typer.main.get_command(app)
    ctx = command.make_context("bearid", [], resilient_parsing=True)
    ctx.obj = {MARKUP_MODE_KEY: app.rich_markup_mode}
    docs = get_docs_for_click(obj=command, ctx=ctx, name="bearid", title="CLI reference").strip()
    title, rest = docs.split("\n\n", 1)
    return f"{title}\n\n{NOTE}\n\n{rest}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CLI_PAGE, help="where to write the page")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(cli_reference(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
