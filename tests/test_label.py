"""`bearid label`: the store (journal, versions, atomic saves, crash recovery), the queues and
volunteers, the JSON API — and, in tests/test_label_browser.py, the page in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from bearid.errors import BearIDError
from bearid.label.app import Labeler, create_app
from bearid.label.queues import Leases, QueueContext
from bearid.label.store import LabelStore, photo_list
from bearid.metadata import read_faces, write_faces


def labelling_copy(splits: Path, out: Path, photos: int = 4) -> Path:
    """A faces XML of a few photos with faces, written where the test may change it."""
    dataset = read_faces(splits / "train.xml")
    dataset.images = [image for image in dataset.images if image.boxes][:photos]
    xml = out / "faces.xml"
    write_faces(dataset, xml)
    return xml


def dlib_loads(xml: Path) -> int:
    import dlib

    return len(dlib.image_dataset_metadata.load_image_dataset_metadata(str(xml)).images)


@pytest.fixture
def xml(splits, tmp_path) -> Path:
    return labelling_copy(splits, tmp_path)


def contents(xml: Path) -> list:
    """What an XML says: each photo's resolved path and its boxes."""
    dataset = read_faces(xml)
    return [(dataset.path_of(image), image.boxes) for image in dataset.images]


def test_a_change_is_journalled_then_saved_and_the_original_kept(xml):
    before = contents(xml)
    store = LabelStore(xml)
    boxes = store.boxes(0)
    boxes[0]["label"] = "bf_900"
    boxes[0]["parts"]["nose"] = [boxes[0]["parts"]["nose"][0] + 7, boxes[0]["parts"]["nose"][1] - 3]
    assert store.update(0, boxes, 0, "alice") == 1
    saved = read_faces(xml).images[0].boxes[0]
    assert saved.label == "bf_900" and list(saved.parts["nose"]) == boxes[0]["parts"]["nose"]
    assert contents(store.original) == before != contents(xml)  # the XML as it was, kept once
    (entry,) = store.history(0)
    assert (
        entry["volunteer"] == "alice"
        and entry["after"][0]["label"] == "bf_900"
        and entry["before"][0]["label"] != "bf_900"
    )
    assert store.update(0, boxes, 1, "alice") == 1  # the same boxes again: no new version, no journal line
    assert len(store.history()) == 1 and dlib_loads(xml) == 4
    assert not [p for p in xml.parent.iterdir() if p.name.endswith(".tmp")]
    store.close()


def test_an_edit_on_an_old_version_is_refused_so_no_tab_overwrites_another(xml):
    store = LabelStore(xml)
    first, second = store.boxes(1), store.boxes(1)
    first[0]["label"] = "from_tab_one"
    second[0]["label"] = "from_tab_two"
    store.update(1, first, 0, "alice")
    with pytest.raises(BearIDError, match="changed elsewhere"):
        store.update(1, second, 0, "alice")
    assert read_faces(xml).images[1].boxes[0].label == "from_tab_one"
    store.close()


def test_bad_edits_are_refused_with_the_reason_and_change_nothing(xml):
    store = LabelStore(xml)
    before = xml.read_bytes()
    good = store.boxes(0)[0]
    for bad, reason in (
        (dict(good, width=0), "positive"),
        (dict(good, label="a<b"), "without &"),
        (dict(good, left="x"), "must be a number"),
        (dict(good, parts={"nose": [1]}), "landmark"),
    ):
        with pytest.raises(BearIDError, match=reason):
            store.update(0, [bad], 0, "alice")
    with pytest.raises(BearIDError, match="volunteer name"):
        store.update(0, [good], 0, "<script>")
    assert xml.read_bytes() == before and not store.journal.exists()
    store.close()


def test_a_crash_between_journal_and_xml_loses_nothing_and_a_second_server_is_refused(xml):
    store = LabelStore(xml)
    with pytest.raises(BearIDError, match="already open"):
        LabelStore(xml)
    boxes = store.boxes(2)
    boxes.pop()  # delete a face ...
    entry = {
        "kind": "edit",
        "volunteer": "bob",
        "file": store.dataset.images[2].file,
        "version": 1,
        "before": store.boxes(2),
        "after": boxes,
    }
    store.journal.write_text(json.dumps(entry) + "\n" + '{"kind": "edit", "torn')  # ... journalled, then the crash
    store.close()
    assert len(read_faces(xml).images[2].boxes) == len(entry["before"])
    reopened = LabelStore(xml)
    assert reopened.opened.recovered == 1 and reopened.versions[2] == 1
    assert len(read_faces(xml).images[2].boxes) == len(boxes)
    reopened.close()


def test_queues_volunteers_and_the_api(xml, tmp_path):
    dataset = read_faces(xml)
    dataset.images[0].boxes[0].attrs["detection_score"] = "0.31"  # unsure
    dataset.images[1].boxes[0].parts.pop("lear")  # missing a landmark
    dataset.images[3].boxes[0].label = None  # no ID
    write_faces(dataset, xml)
    flags = {dataset.path_of(dataset.images[2]).resolve(): ["blurry: sharpness 3 < 10"]}
    now = [0.0]
    labeler = Labeler(LabelStore(xml), QueueContext(0.5, flags), Leases(ttl=60, clock=lambda: now[0]))
    client = TestClient(create_app(labeler))
    info = client.get("/api/info").json()
    todo = {q["name"]: q["todo"] for q in info["queues"]}
    assert todo == {"all": 4, "unsure": 1, "landmarks": 1, "flagged": 1, "unknown": 1, "match": 1, "disagreement": 0}
    assert client.get("/api/images/0").json()["reasons"]["unsure"].startswith("detector scores 0.31")
    assert "lear" in client.get("/api/images/1").json()["reasons"]["landmarks"]
    # Two volunteers at once get different photos; a lease lapses.
    a = client.get("/api/next", params={"queue": "all", "volunteer": "alice"}).json()["index"]
    b = client.get("/api/next", params={"queue": "all", "volunteer": "bob"}).json()["index"]
    assert (a, b) == (0, 1)
    # Moving on records a review (a POST; GET /api/next writes nothing): the photo leaves that queue.
    assert client.post("/api/review", json={"index": a, "queue": "all", "volunteer": "alice"}).json()["todo"] == 3
    assert client.get("/api/next", params={"queue": "all", "volunteer": "alice", "after": a}).json() == {
        "index": 2,
        "todo": 3,
    }
    assert (
        client.get("/api/next", params={"queue": "all", "volunteer": "carol"}).json()["index"] == 3
    )  # 1 and 2 are held
    now[0] += 61
    assert (
        client.get("/api/next", params={"queue": "all", "volunteer": "dave"}).json()["index"] == 1
    )  # bob's lease lapsed
    # Saving through the API: a fix takes the photo out of the landmarks queue; conflicts are 409.
    image = client.get("/api/images/1").json()
    image["boxes"][0]["parts"]["lear"] = [10, 10]
    done = client.put("/api/images/1", json={"boxes": image["boxes"], "version": image["version"], "volunteer": "bob"})
    assert done.status_code == 200 and done.json()["version"] == 1
    stale = client.put("/api/images/1", json={"boxes": [], "version": 0, "volunteer": "bob"})
    assert stale.status_code == 409 and "changed elsewhere" in stale.json()["error"]
    assert client.put("/api/images/1", json={"boxes": "x", "version": 1, "volunteer": "bob"}).status_code == 400
    assert client.put("/api/images/9", json={"boxes": [], "version": 0, "volunteer": "bob"}).status_code == 404
    assert client.get("/api/images/9").status_code == 404
    assert client.get("/api/next", params={"queue": "nope", "volunteer": "bob"}).json()["error"].startswith("no queue")
    assert {q["name"]: q["todo"] for q in client.get("/api/info").json()["queues"]}["landmarks"] == 0
    assert [e["volunteer"] for e in client.get("/api/history", params={"image": 1}).json()] == ["bob"]
    # The photo is served upright, at the size the XML's coordinates use.
    photo = client.get("/api/images/1/photo")
    assert photo.headers["content-type"] == "image/jpeg"
    with Image.open(dataset.path_of(dataset.images[1])) as original:
        from io import BytesIO

        assert Image.open(BytesIO(photo.content)).size == original.size
    assert client.get("/").text.count("label.js") == 1 and client.get("/static/label.js").status_code == 200
    labeler.store.close()


def test_a_folder_of_photos_gets_a_new_xml_and_running_again_carries_on(splits, tmp_path):
    world = splits.parent / "world"
    xml = photo_list(world, tmp_path / "faces.xml")
    photos = read_faces(xml).images
    assert photos and not any(image.boxes for image in photos)
    assert not any(
        "/_" in image.file or image.file.startswith("_") for image in photos
    )  # BearID's own folders left out
    store = LabelStore(xml)
    store.update(0, [{"left": 5, "top": 6, "width": 50, "height": 40, "label": "bf_001", "parts": {}}], 0, "alice")
    store.close()
    assert photo_list(world, xml) == xml.resolve() and read_faces(xml).images[0].boxes[0].label == "bf_001"
    assert dlib_loads(xml) == len(photos)


def test_the_cli_serves_a_folder_and_names_a_missing_source(splits, tmp_path):
    import socket
    import subprocess
    import sys
    import time

    import httpx

    bearid = [sys.executable, "-c", "from bearid.cli import main; main()", "label"]
    done = subprocess.run([*bearid, str(tmp_path / "nope.xml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no such XML file or folder" in done.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = splits.parent / "world"
    server = subprocess.Popen(
        [*bearid, str(world), "--xml", str(tmp_path / "todo.xml"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, info = time.monotonic() + 60, None
        while info is None and time.monotonic() < deadline and server.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert info and info["photos"] == len(read_faces(tmp_path / "todo.xml").images) > 0
    finally:
        server.terminate()
        server.wait(10)
