"""The docs' references are the code's: the committed CLI page is what the script writes
from the Typer app today, and what the prose says of the client agrees with its signature."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "gen_reference.py"


def _gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_cli_reference_is_what_the_app_generates(tmp_path):
    gen = _gen_reference()
    out = tmp_path / "cli.md"
    assert gen.main(["--out", str(out)]) == 0
    fresh = out.read_text(encoding="utf-8")
    committed = gen.CLI_PAGE.read_text(encoding="utf-8")
    assert fresh == committed, (
        "docs/reference/cli.md is out of date with the bearid command: run "
        "`.venv/bin/python scripts/gen_reference.py` and commit the page"
    )


def test_the_cli_reference_documents_every_verb_and_its_options():
    """Guards the generator itself: a page of stubs or of top-level verbs only would also be 'equal'."""
    import click
    import typer.main

    from bearid.cli import app

    headings = set(re.findall(r"^#+ `bearid[^`]*`$", _gen_reference().cli_reference(), re.M))
    wanted = set()

    def walk(command: click.Command, path: str, depth: int) -> None:
        wanted.add(f"{'#' * depth} `{path}`")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}", depth + 1)

    walk(typer.main.get_command(app), "bearid", 1)
    wanted.discard("# `bearid`")  # the page's own title stands for the top level
    assert headings == wanted
    assert len(wanted) > 40  # the groups' verbs too (data split, ids merge, ...)
    page = _gen_reference().cli_reference()
    assert "`--by <open_set|top1|baks|baus|auroc>`" in page  # with their options and choices
    assert "Not available" not in page


def test_the_served_docs_state_the_clients_concurrency_default():
    from bearid.client import AsyncBearIDClient, BearIDClient

    defaults = {
        inspect.signature(cls.identify_many).parameters["concurrency"].default
        for cls in (BearIDClient, AsyncBearIDClient)
    }
    assert len(defaults) == 1
    serving = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    # The one place the prose gives identify_many's signature (other mentions pass their own value).
    stated = re.search(r"`identify_many\(paths, concurrency=(\d+)\)` \(streams", serving)
    assert stated, "docs/serving.md no longer states identify_many's signature where this test looks"
    assert {int(stated.group(1))} == defaults


def test_the_docs_screenshots_are_shown_and_small():
    """A retaken screenshot must stay small enough to commit, and none lies unused."""
    from test_label_browser import DOCS_IMAGE_BYTES, DOCS_IMAGES

    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    pictures = sorted(DOCS_IMAGES.glob("*.png"))
    assert {p.name for p in pictures} >= {"label-tool.png", "match-review.png", "bear-book.png"}
    for picture in pictures:
        assert f"](images/{picture.name})" in pages, f"{picture.name} is in docs/images but no page shows it"
        assert picture.stat().st_size <= DOCS_IMAGE_BYTES, f"{picture.name}: retake it with scripts/docs_screenshots.sh"
