"""The bear book: a card per bear from the archive's folders and a faces XML, look-alikes by
embedding from a bundle; checked by its numbers and by a screenshot in Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from collections import Counter
from pathlib import Path

from test_label_browser import ARTIFACTS, CHROMIUM_FLAGS, chromium, docs_picture

from bearid.cards import cards
from bearid.data.layout import is_bear_id
from bearid.metadata import read_faces


def test_the_book_has_a_card_per_bear_with_its_sightings_lookalikes_and_cubs(splits, bundle_dir, tmp_path):
    world = splits.parent / "world"
    truth = read_faces(world / "_truth" / "faces.xml")
    out = tmp_path / "book"
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "book", str(world),
         "--faces", str(world / "_truth" / "faces.xml"), "--bundle", str(bundle_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    bears = [b for b in truth.labels() if is_bear_id(b)]  # cubs are on their mother's card
    assert sorted(re.findall(r"<article class='card' id='([^']+)'", page)) == sorted(
        set(bears) | set(cards(world, None))
    )
    found = cards(world, truth)
    for bear in bears:
        photos = {truth.path_of(i).resolve() for i in truth.images if any(b.label == bear for b in i.boxes)}
        assert photos <= {s.photo for s in found[bear].sightings}
        assert all((out / src).is_file() for src in re.findall(rf"src='(chips/{bear}_\d+\.jpg)'", page))
    years = Counter(s.date.year for s in found[bears[0]].sightings if s.date)
    assert f"<span>{min(years)}</span>" in page
    assert "Look-alikes" in page and "similarity" in page
    for bear, card in found.items():
        assert all(other != bear for other, _ in card.lookalikes)
    cubs = [c for card in found.values() for c in card.cubs]
    assert all((world / c).is_dir() for c in cubs)
    for href in re.findall(r"<li><a href='([^']+)'", page):  # cub folders, linked from the book's folder
        assert (out / urllib.parse.unquote(href)).resolve() in {(world / c).resolve() for c in cubs}
    assert len(re.findall(r"<li><a href=", page)) == len(cubs)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        view = browser.new_page(viewport={"width": 1300, "height": 1000})
        view.goto((out / "index.html").as_uri())
        view.wait_for_function("[...document.images].every((im) => im.complete && im.naturalWidth > 0)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        view.screenshot(path=str(ARTIFACTS / "bear-book.png"))
        docs_picture(view, "bear-book.png")
        browser.close()


def test_a_book_of_no_bears_is_refused(tmp_path):
    argv = [
        sys.executable,
        "-c",
        "from bearid.cli import main; main()",
        "book",
        str(tmp_path),
        "--out",
        str(tmp_path / "b"),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no bears found" in done.stderr
    assert Path(tmp_path / "b").exists() is False


def test_a_folder_named_like_a_script_url_stays_a_path_in_the_book(splits, tmp_path):
    """A contributor's folder named `javascript:alert(1)` must not become a link that runs a
    script when a reader clicks it."""
    import shutil

    from bearid.book import write
    from bearid.chip import ChipSpec

    world = splits.parent / "world"
    photo = next(world.rglob("*.jpg"))
    root = tmp_path / "archive"
    cub = root / "javascript:alert(1)" / "hartley_20190815" / "bf_001_cub"
    cub.mkdir(parents=True)
    shutil.copy(photo, cub / "a.jpg")
    shutil.copytree(photo.parent, root / "brooks_falls" / "hartley_20190815" / "bf_001")
    out = tmp_path / "book"
    page = write(cards(root, None), None, out, ChipSpec(), "Bear book", root).read_text()
    [href] = re.findall(r"<li><a href='([^']+)'", page)
    assert not href.lower().startswith("javascript") and "%3A" in href
    assert (out / urllib.parse.unquote(href)).resolve() == cub.resolve()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        view = browser.new_page()
        dialogs = []
        view.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        view.goto((out / "index.html").as_uri())
        view.click("li a")
        view.wait_for_timeout(300)
        assert dialogs == [] and view.url.startswith("file://")  # followed as a path, nothing ran
        browser.close()
