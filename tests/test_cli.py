"""The `bearid` command as a user runs it: clear messages and exit codes, never a traceback."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

BEARID = [sys.executable, "-c", "from bearid.cli import main; main()"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BEARID, *args], capture_output=True, text=True, timeout=300)


def test_synth_then_validate_end_to_end(tmp_path):
    """The core path of this stage of the project: make a world, look at it, check its XML."""
    sheet = tmp_path / "sheet.png"
    done = run(
        "synth",
        str(tmp_path / "w"),
        "--bears",
        "5",
        "--photos",
        "40",
        "--seed",
        "2",
        "--messy",
        "--set",
        "max_side=900",
        "--contact-sheet",
        str(sheet),
    )
    assert done.returncode == 0, done.stderr
    assert "photos" in done.stdout and "faces" in done.stdout and "brooks_falls" in done.stdout
    with Image.open(sheet) as img:
        assert img.width >= 1000 and img.height >= 400
    ok = run("validate", str(tmp_path / "w/_truth/faces.xml"))
    assert ok.returncode == 0 and "0 errors" in ok.stdout
    bad = run("validate", str(tmp_path / "w/_labels/faces_imglab.xml"))
    assert (
        bad.returncode == 1 and "missing landmark(s): rear" in bad.stdout and "unknown part name(s): chin" in bad.stdout
    )


def test_bad_input_gets_a_message_not_a_traceback(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<dataset><images><image file='a.jpg'>")
    for args in (("validate", str(broken)), ("synth", str(tmp_path / "x"), "--set", "nonsense=1")):
        done = run(*args)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr and "error:" in done.stderr
    assert "malformed XML" in run("validate", str(broken)).stderr


def test_every_command_has_help_with_an_example():
    for verb in (
        ["synth"],
        ["validate"],
        *[["data", v] for v in ("scan", "ingest", "clean", "restore", "split", "stats")],
    ):
        done = run(*verb, "--help")
        assert done.returncode == 0 and "Example:" in done.stdout, verb


def test_curator_story_through_the_cli(messy_world, tmp_path):
    """ingest a drop -> clean and quarantine -> restore -> split -> stats, as a curator types it."""
    import shutil

    root = tmp_path / "bears"
    shutil.copytree(messy_world, root, ignore=shutil.ignore_patterns(".bearid"))
    drop = root / "_drops" / "hartley_20190815"
    done = run(
        "data",
        "ingest",
        str(drop),
        str(root),
        "--location",
        "brooks_falls",
        "--contributor",
        "hartley",
        "--date",
        "201908",
        "--id-from",
        r"filename:(bf_\d{3})",
    )
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout and "unreadable: README.jpg" in done.stdout.replace("\n", " ")
    done = run(
        "data",
        "clean",
        str(root),
        "--faces",
        str(root / "_truth/faces.xml"),
        "--apply",
        "--only",
        "exact_duplicate,corrupt,not_image",
    )
    assert done.returncode == 0, done.stderr
    assert "exact_duplicate" in done.stdout and "moved" in done.stdout and (root / ".bearid/clean/report.html").exists()
    assert (root / "_quarantine" / "exact_duplicate").is_dir() and not (root / "_quarantine" / "tiny").exists()
    done = run("data", "restore", str(root))
    assert (
        done.returncode == 0 and "restored" in done.stdout and not (root / "_quarantine" / "exact_duplicate").exists()
    )
    done = run(
        "data",
        "split",
        str(root),
        "--out",
        str(tmp_path / "splits"),
        "--by",
        "bear",
        "--faces",
        str(root / "_truth/faces.xml"),
    )
    assert done.returncode == 0, done.stderr
    assert all((tmp_path / "splits" / f"{n}.xml").exists() for n in ("train", "val", "test", "holdout"))
    done = run("data", "stats", str(root), "--html", str(tmp_path / "stats.html"))
    assert done.returncode == 0 and "brooks_falls" in done.stdout and (tmp_path / "stats.html").exists()
    bad = run("data", "ingest", str(drop), str(root), "--location", "x", "--contributor", "y", "--date", "2019-08")
    assert bad.returncode == 2 and "--date" in bad.stderr and "Traceback" not in bad.stderr
