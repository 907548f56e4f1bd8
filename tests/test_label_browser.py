"""The labelling page in a real headless browser (Debian's Chromium, driven by Playwright): a
volunteer moves a landmark, relabels a face, draws a face, deletes it and undoes that; then
the XML on disk must have changed exactly so and still load in dlib. A second volunteer gets
another photo; a second tab's stale edit is refused and the volunteer told. The page's
screenshot is kept in build/test-artifacts/."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from test_label import contents, dlib_loads, labelling_copy

from bearid.label.app import Labeler, create_app
from bearid.label.store import LabelStore
from bearid.metadata import read_faces

ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
DOCS_IMAGE_BYTES = 300_000  # a committed screenshot stays small
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = os.environ.get("BEARID_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("BEARID_BROWSER_TESTS") == "required":
            pytest.fail(
                "no Chromium found (scripts/install-browser.sh installs Debian's); the browser tests are required here"
            )
        pytest.skip("no Chromium on this machine: run scripts/install-browser.sh (make test does)")
    return found


def docs_picture(page, name: str) -> None:
    """With BEARID_DOCS_SCREENSHOTS=1 (scripts/docs_screenshots.sh), keep this view as the docs'
    picture docs/images/NAME, small enough to commit; else nothing."""
    if os.environ.get("BEARID_DOCS_SCREENSHOTS") != "1":
        return
    import io

    from PIL import Image

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    (DOCS_IMAGES / name).write_bytes(small_png(Image.open(io.BytesIO(page.screenshot()))))


def small_png(image) -> bytes:
    """`image` in at most 256 colours, chosen by coverage so the landmarks' few bright pixels
    keep their own colours (median cut greys them), under DOCS_IMAGE_BYTES."""
    import io

    from PIL import Image

    for colours in (256, 128, 64):
        data = io.BytesIO()
        image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MAXCOVERAGE).save(
            data, "PNG", optimize=True
        )
        if data.tell() <= DOCS_IMAGE_BYTES:
            return data.getvalue()
    raise AssertionError(f"a {image.size} screenshot is {data.tell()} bytes even in {colours} colours")


@contextlib.contextmanager
def serving(app):
    """`app` served by uvicorn on a free loopback port, in a thread: its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path, photos=3)
    store = LabelStore(xml)
    with serving(create_app(Labeler(store))) as url:
        yield url, xml, store
    store.close()


def test_a_volunteer_fixes_a_photo_in_the_browser(server):
    from playwright.sync_api import sync_playwright

    url, xml, store = server
    before = read_faces(xml).images[0]
    face = before.boxes[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/?volunteer=alice&image=0")
        page.wait_for_selector("body[data-ready='0']")

        def screen(x: float, y: float) -> tuple[float, float]:
            return tuple(
                page.evaluate(
                    "([x, y]) => { const m = document.getElementById('canvas').getScreenCTM();"
                    " return [m.a * x + m.e, m.d * y + m.f]; }",
                    [x, y],
                )
            )

        def drag(start, end, shift: bool = False) -> None:
            page.mouse.move(*screen(*start))
            if shift:
                page.keyboard.down("Shift")
            page.mouse.down()
            page.mouse.move(*screen(*end), steps=6)
            page.mouse.up()
            if shift:
                page.keyboard.up("Shift")

        def saved(version: int) -> None:
            page.wait_for_selector(f"body[data-saved='0:{version}']", timeout=10_000)

        # 1. Zoom in on the (small) face, move its nose 15 px right and 10 px up, zoom out.
        scale = page.evaluate("document.getElementById('canvas').getScreenCTM().a")
        page.keyboard.press("z")
        assert page.evaluate("document.getElementById('canvas').getScreenCTM().a") > 2 * scale
        docs_picture(page, "label-tool.png")
        nx, ny = face.parts["nose"]
        drag((nx, ny), (nx + 15, ny - 10))
        saved(1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "label-face.png"))
        page.keyboard.press("0")
        # 2. Relabel the face (autocomplete lists the known IDs).
        assert page.locator("#ids option").count() >= 1
        page.fill("#label", "bf_777")
        page.press("#label", "Enter")
        saved(2)
        # 3. Draw a new face with Shift+drag, away from the first.
        width, height = before.width, before.height
        x0 = 10 if face.left > 120 else width - 90
        y0 = 10 if face.top > 100 else height - 80
        drag((x0, y0), (x0 + 70, y0 + 60), shift=True)
        saved(3)
        assert len(read_faces(xml).images[0].boxes) == len(before.boxes) + 1
        # 4. Delete it (it is selected), 5. undo the delete.
        page.keyboard.press("Delete")
        saved(4)
        assert len(read_faces(xml).images[0].boxes) == len(before.boxes)
        page.keyboard.press("Control+z")
        saved(5)
        page.screenshot(path=str(ARTIFACTS / "label-page.png"))

        # A second volunteer is given another photo.
        bob = browser.new_page()
        bob.goto(f"{url}/?volunteer=bob")
        bob.wait_for_selector("body[data-ready]")
        assert bob.evaluate("document.body.dataset.ready") != "0"

        # A second tab of alice's on the same photo: its stale edit is refused, and it says so.
        tab = browser.new_page()
        tab.goto(f"{url}/?volunteer=alice&image=0")
        tab.wait_for_selector("body[data-ready='0']")
        page.keyboard.press("i")  # the first tab marks the first face ignore ...
        saved(6)
        tab.keyboard.press("Tab")
        tab.keyboard.press("Tab")  # ... the second, not knowing, selects the new face and deletes it
        tab.keyboard.press("Delete")
        tab.wait_for_selector("#status.error")
        assert "changed in another tab" in tab.inner_text("#status")
        browser.close()

    after = read_faces(xml).images[0]
    moved, drawn = after.boxes[0], after.boxes[-1]
    assert (moved.left, moved.top, moved.width, moved.height) == (face.left, face.top, face.width, face.height)
    assert moved.label == "bf_777" and moved.ignore
    assert abs(moved.parts["nose"][0] - (nx + 15)) <= 1 and abs(moved.parts["nose"][1] - (ny - 10)) <= 1
    assert {k: v for k, v in moved.parts.items() if k != "nose"} == {k: v for k, v in face.parts.items() if k != "nose"}
    assert len(after.boxes) == len(before.boxes) + 1 and before.boxes[1:] == after.boxes[1:-1]
    assert (
        abs(drawn.left - x0) <= 1
        and abs(drawn.top - y0) <= 1
        and abs(drawn.width - 70) <= 2
        and abs(drawn.height - 60) <= 2
    )
    edits = [e for e in store.history(0) if e["kind"] == "edit"]
    assert [e["version"] for e in edits] == [1, 2, 3, 4, 5, 6] and {e["volunteer"] for e in edits} == {"alice"}
    assert contents(xml)[1:] == contents(store.original)[1:]  # the other photos untouched
    assert dlib_loads(xml) == 3
    # What the training stages read: the fixed face with its five landmarks, the drawn one
    # with none yet (validate says so, for that face only).
    from bearid.metadata import validate
    from bearid.training.data import read_samples

    faces = read_samples(xml)[0].faces
    assert faces[0].landmarks is not None and faces[0].label == "bf_777" and faces[-1].landmarks is None

    def findings(path):
        return {(f.code, f.box) for f in validate(read_faces(path), path) if f.image == read_faces(path).images[0].file}

    assert findings(xml) - findings(store.original) == {("missing_landmarks", len(after.boxes) - 1)}


@pytest.fixture
def match_server(splits, tmp_path):
    """The label tool on a `bearid score`-like XML whose last faces wait for a name."""
    from test_matching import make_scored

    xml = make_scored(splits, tmp_path)
    store = LabelStore(xml)
    with serving(create_app(Labeler(store))) as url:
        yield url, xml, store
    store.close()


def test_a_curator_settles_faces_in_the_match_review(match_server):
    from playwright.sync_api import sync_playwright

    url, xml, store = match_server
    labeler = Labeler(store)
    todo = [(i, f["face"]) for i in labeler.members("match") for f in labeler.match(i)["faces"]]
    assert len(todo) == 3
    known = set(store.dataset.labels())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/?volunteer=curator&queue=match")
        i, face = todo[0]
        page.wait_for_selector(f"body[data-match-ready='{i}:{face}']")
        page.wait_for_function(
            "[...document.querySelectorAll('#match img')].every((im) => im.complete && im.naturalWidth > 0)"
        )
        assert page.locator("#match-candidates .card").count() >= 2
        assert page.locator("#match-candidates .card").first.locator(".refs img").count() >= 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "match-review.png"))
        docs_picture(page, "match-review.png")
        first = page.locator("#match-candidates .card").first.get_attribute("data-bear")
        page.keyboard.press("1")  # this is the top candidate
        i, face = todo[1]
        page.wait_for_selector(f"body[data-match-ready='{i}:{face}']")
        page.fill("#match-name", "Otis")
        page.click("#match-new")  # a new bear
        i, face = todo[2]
        page.wait_for_selector(f"body[data-match-ready='{i}:{face}']")
        page.keyboard.press("x")  # not a bear
        page.wait_for_function("document.getElementById('status').textContent.includes('not a bear')")
        browser.close()

    saved = read_faces(xml)
    (i0, f0), (i1, f1), (i2, f2) = todo
    assert saved.images[i0].boxes[f0].label == first and first in known
    new = saved.images[i1].boxes[f1].label
    assert new not in known and new.startswith("bf_") and store.bears[new]["name"] == "Otis"
    assert saved.images[i2].boxes[f2].ignore
    decided = [e["match"] for e in store.history() if "match" in e]
    assert [(m["decision"], m["matched_by"]) for m in decided] == [
        ("same", "curator"),
        ("new", "curator"),
        ("not_bear", "curator"),
    ]
    assert decided[0]["shown"] and dlib_loads(xml) == len(saved.images)


def test_a_volunteer_logs_in_and_the_page_sends_its_csrf_token(splits, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_matching import make_scored

    from bearid.label.accounts import Accounts
    from bearid.label.auth import Auth

    xml = make_scored(splits, tmp_path)
    accounts = Accounts.open(tmp_path / "accounts.json")
    accounts.add("vic", "volunteer", "a volunteer's secret")
    store = LabelStore(xml)
    labeler = Labeler(store)
    i = labeler.members("match")[0]
    face = labeler.match(i)["faces"][0]["face"]
    with serving(create_app(Labeler(store), Auth(accounts))) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{base}/?queue=match")
        page.wait_for_url("**/login")
        page.fill("input[name=name]", "vic")
        page.fill("input[name=password]", "wrong password")
        page.click("button")
        assert "Wrong name or password" in page.inner_text("body")
        page.fill("input[name=name]", "vic")
        page.fill("input[name=password]", "a volunteer's secret")
        page.click("button")
        page.goto(f"{base}/?queue=match")
        page.wait_for_selector(f"body[data-match-ready='{i}:{face}']")
        assert page.input_value("#volunteer") == "vic (volunteer)"
        assert not page.is_visible("#match-new")  # naming a new bear is a curator's: no button ...
        page.keyboard.press("n")  # ... and the key is refused by the server, which says why
        page.wait_for_selector("#status.error")
        assert "curator" in page.inner_text("#status")
        page.keyboard.press("1")  # this is the top candidate: a volunteer may say so
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Saved')")
        page.screenshot(path=str(ARTIFACTS / "label-login-match.png"))
        browser.close()
    store.close()
    [decided] = [e for e in journal_of(xml) if "match" in e]
    assert decided["volunteer"] == "vic" and decided["match"]["matched_by"] == "vic"


def journal_of(xml):
    store = LabelStore(xml)
    try:
        return store.history()
    finally:
        store.close()


def test_a_curator_splits_a_face_off_undoes_it_and_merges_two_bears(match_server):
    from playwright.sync_api import sync_playwright

    url, xml, store = match_server
    before = read_faces(xml)
    ids = before.labels()
    first = before.images[0].boxes[0].label
    keep, gone = [b for b in ids if b != first][:2]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/?volunteer=curator&image=0")
        page.wait_for_selector("body[data-ready='0']")
        page.click("#split")  # the selected face (the first) is another bear
        page.wait_for_selector("body[data-op]")
        split = page.evaluate("document.body.dataset.op")
        new = read_faces(xml).images[0].boxes[0].label
        assert new not in ids and new.startswith("bf_")
        page.click("#undo-op")
        page.wait_for_function(f"document.body.dataset.op !== '{split}'")
        assert read_faces(xml).images[0].boxes[0].label == first
        page.fill("#merge-gone", gone)
        page.fill("#merge-keep", keep)
        page.click("#merge")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('merged')")
        page.screenshot(path=str(ARTIFACTS / "label-merge.png"))
        browser.close()
    after = read_faces(xml)
    assert gone not in after.labels() and keep in after.labels()
    assert sum(b.label == keep for _, b in after.faces()) == sum(b.label in (keep, gone) for _, b in before.faces())
    kinds = [op["kind"] for op in store.operations()]
    assert kinds == ["split", "undo", "merge"] and dlib_loads(xml) == len(after.images)
