"""The label tool attacked through its HTTP API as a hostile volunteer would, and hit by
crashes as an unlucky operator would (#32): what a client sends never becomes markup or an
unreadable file, volunteers cannot do a curator's steps through the plain editor, and the
files survive crashes with their modes. Each test makes the attack and checks the refusal,
and that every file stays readable with every acknowledged edit."""

from __future__ import annotations

import json
import os
import stat

import pytest
from test_accounts import logged_in, site  # noqa: F401 (the fixture)
from test_label import dlib_loads, labelling_copy

from bearid.label.store import LabelStore
from bearid.metadata import read_faces, write_faces
from bearid.metadata._xml import Unwritable


def put(client, csrf, labeler, i, boxes):
    return client.put(
        f"/api/images/{i}",
        content=json.dumps({"boxes": boxes, "version": labeler.store.versions[i]}),
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )


def test_a_box_attribute_name_cannot_inject_markup(site, tmp_path):  # noqa: F811
    labeler, auth, _ = site
    vic, csrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    secret = tmp_path / "private.jpg"
    secret.write_bytes(b"not for volunteers")
    before = labeler.store.xml.read_bytes()
    for name in (f"x='1'/></image><image file='{secret}'><box top='1", "two words", "1st", "a:b", ""):
        boxes = labeler.store.boxes(0)
        boxes[0]["attrs"][name] = "1"
        refused = put(vic, csrf, labeler, 0, boxes)
        assert refused.status_code == 400 and "attribute" in refused.json()["error"], name
    boxes = labeler.store.boxes(0)
    boxes[0]["attrs"]["note"] = 'it\'s <b>"here"</b> & there'  # a value: escaped, never markup
    assert put(vic, csrf, labeler, 0, boxes).status_code == 200
    saved = read_faces(labeler.store.xml)
    assert len(saved.images) == len(read_faces(labeler.store.original).images)
    assert all(str(secret) not in image.file for image in saved.images)
    assert saved.images[0].boxes[0].attrs["note"] == 'it\'s <b>"here"</b> & there'
    assert dlib_loads(labeler.store.xml) == len(saved.images)
    assert before != labeler.store.xml.read_bytes()


def test_the_writer_refuses_a_file_its_own_reader_could_not_parse(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    before = xml.read_bytes()
    for attack in ({"a b": "1"}, {"ok": "bf_1\x00"}, {"ok": "bf_\ud800"}):
        dataset = read_faces(xml)
        dataset.images[0].boxes[0].attrs.update(attack)
        with pytest.raises(Unwritable):
            write_faces(dataset, xml)
        assert xml.read_bytes() == before and not list(tmp_path.glob(".faces.xml.*.tmp"))
    dataset = read_faces(xml)
    dataset.images[0].boxes[0].label = "bf_\x07"
    with pytest.raises(Unwritable):
        write_faces(dataset, xml)


def test_control_characters_and_lone_surrogates_are_refused_and_others_still_save(site):  # noqa: F811
    labeler, auth, _ = site
    vic, csrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    known = labeler.store.dataset.labels()[0]
    for bad in ("bf_180\\u0000x", "bf_\\ud800", "bf_1\\u001b[31m"):  # as JSON escapes: what a client sends
        boxes = labeler.store.boxes(0)
        body = json.dumps({"boxes": boxes, "version": labeler.store.versions[0]}).replace(
            json.dumps(boxes[0]["label"]), f'"{bad}"', 1
        )
        refused = vic.put("/api/images/0", content=body, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 400, (bad, refused.text)
    boxes = labeler.store.boxes(1)
    boxes[0]["label"] = known
    boxes[0]["left"] += 3
    saved = put(vic, csrf, labeler, 1, boxes)  # another edit saves as before
    assert saved.status_code == 200 and read_faces(labeler.store.xml).images[1].boxes[0].left == boxes[0]["left"]
    versions = list(labeler.store.versions)
    labeler.store.close()
    again = LabelStore(labeler.store.xml)  # a restart replays the journal: nothing bad was journalled
    assert again.versions == versions and again.opened.recovered == 0 and again.opened.skipped == 0
    again.close()
    assert dlib_loads(labeler.store.xml) == len(labeler.store)
    labeler.store.__init__(labeler.store.xml)  # the fixture closes it


def test_a_journal_edit_an_older_release_accepted_does_not_stop_a_restart(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    store = LabelStore(xml)
    boxes = store.boxes(0)
    boxes[0]["left"] += 4
    store.update(0, boxes, 0, "alice")
    store.close()
    entries = store.journal.read_text().splitlines()
    poisoned = json.loads(entries[-1])
    poisoned["version"] = 2
    poisoned["before"], poisoned["after"] = poisoned["after"], [{**poisoned["after"][0], "label": "bf_\x00"}]
    with open(store.journal, "a") as fh:
        fh.write(json.dumps(poisoned) + "\n")
    again = LabelStore(xml)
    assert again.opened.skipped == 1 and again.versions[0] == 1
    assert read_faces(xml).images[0].boxes[0].label == boxes[0]["label"]
    again.close()


def test_a_volunteer_cannot_name_a_new_bear_or_forge_who_matched_through_the_editor(site):  # noqa: F811
    labeler, auth, _ = site
    vic, csrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    i = 0
    boxes = labeler.store.boxes(i)
    boxes[0]["label"] = "bf_999"
    refused = put(vic, csrf, labeler, i, boxes)
    assert refused.status_code == 403 and "curator" in refused.json()["error"]
    assert "bf_999" not in labeler.store.known_ids()
    other = next(b for b in labeler.store.dataset.labels() if b != labeler.store.boxes(i)[0]["label"])
    boxes = labeler.store.boxes(i)
    boxes[0]["label"], boxes[0]["attrs"]["matched_by"] = other, "anna"
    assert put(vic, csrf, labeler, i, boxes).status_code == 200
    assert labeler.store.boxes(i)[0]["attrs"]["matched_by"] == "vic"  # the server says who, not the page
    boxes = labeler.store.boxes(i)
    boxes[0]["attrs"]["matched_by"], boxes[0]["left"] = "anna", boxes[0]["left"] + 1
    assert put(vic, csrf, labeler, i, boxes).status_code == 200
    assert labeler.store.boxes(i)[0]["attrs"]["matched_by"] == "vic"  # label unchanged: who matched it stays
    anna, acsrf = logged_in(labeler, auth, "anna", "a curator's secret")
    boxes = labeler.store.boxes(i)
    boxes[0]["label"] = "bf_998"
    assert put(anna, acsrf, labeler, i, boxes).status_code == 200  # a curator may
    assert labeler.store.boxes(i)[0]["attrs"]["matched_by"] == "anna"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/api/images/0", b"not json"),
        ("put", "/api/images/0", b"[1, 2]"),
        ("put", "/api/images/0", b'{"boxes": [{"left": 1, "top": 1, "width": 5, "height": 5, "parts": [1]}], '
                                 b'"version": 0}'),
        ("put", "/api/images/0", b'{"boxes": [{"left": 1, "top": 1, "width": 5, "height": 5, "attrs": [1]}], '
                                 b'"version": 0}'),
        ("post", "/api/bears/merge", b"not json"),
        ("post", "/api/bears/merge", b"[]"),
        ("post", "/api/bears/merge", b'{"keep": 123, "gone": ["bf_1"]}'),
        ("post", "/api/bears/split", b'{"faces": [[0, 0]], "name": 123}'),
        ("post", "/api/bears/split", b'{"faces": "all"}'),
        ("post", "/api/bears/undo", b'"op"'),
        ("post", "/api/match/0", b"[]"),
        ("post", "/api/match/0", b'{"face": 0, "decision": "new", "version": 0, "name": 123}'),
        ("post", "/api/match/0", b'{"face": 0, "decision": "same", "version": 0, "bear_id": ["x"]}'),
    ],
)  # fmt: skip
def test_a_body_of_the_wrong_shape_gets_400_not_500(site, method, path, body):  # noqa: F811
    labeler, auth, _ = site
    anna, csrf = logged_in(labeler, auth, "anna", "a curator's secret")
    before = labeler.store.xml.read_bytes()
    answer = getattr(anna, method)(path, content=body, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 400, answer.text
    assert "error" in answer.json() and labeler.store.xml.read_bytes() == before


def test_the_xml_path_on_the_server_is_for_curators(site):  # noqa: F811
    labeler, auth, _ = site
    vic, _ = logged_in(labeler, auth, "vic", "a volunteer's secret")
    anna, _ = logged_in(labeler, auth, "anna", "a curator's secret")
    assert vic.get("/api/info").json()["xml"] == labeler.store.xml.name
    assert anna.get("/api/info").json()["xml"] == str(labeler.store.xml)


def test_a_torn_journal_line_is_cut_and_the_next_edit_starts_a_line_of_its_own(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    store = LabelStore(xml)
    boxes = store.boxes(0)
    boxes[0]["left"] += 2
    store.update(0, boxes, 0, "alice")
    store.close()
    with open(store.journal, "a") as fh:
        fh.write('{"kind": "edit", "file": "x.jpg", "vers')  # power lost mid-line
    again = LabelStore(xml)
    assert again.opened.torn == len('{"kind": "edit", "file": "x.jpg", "vers')
    boxes[0]["left"] += 2
    again.update(0, boxes, 1, "bob")
    lines = again.journal.read_text().splitlines()
    assert [json.loads(line)["volunteer"] for line in lines] == ["alice", "bob"]  # every line reads
    assert [e["volunteer"] for e in again.history(0)] == ["alice", "bob"]
    again.close()
    with open(again.journal, "ab") as fh:  # a torn line left, and appends made without a restart
        fh.write(b'{"torn": ')
    store = LabelStore.__new__(LabelStore)  # what _append does on its own, without a recovery first
    store.journal = again.journal
    store._append({"kind": "review", "volunteer": "carl", "file": "x", "queue": "all"})
    assert json.loads(again.journal.read_text().splitlines()[-1])["volunteer"] == "carl"


def test_leftover_temporary_files_of_a_killed_save_are_removed_at_start(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    left = [tmp_path / ".faces.xml.k1ll3d.tmp", tmp_path / ".faces.xml.abc123.tmp"]
    for f in left:
        f.write_text("<dataset><images><image file='half")
    other = tmp_path / ".other.xml.abc.tmp"  # another file's writer: not ours to remove
    other.write_text("x")
    store = LabelStore(xml)
    assert store.opened.temps == 2 and not any(f.exists() for f in left) and other.exists()
    store.close()


def test_a_rewrite_keeps_the_files_mode(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    os.chmod(xml, 0o600)
    store = LabelStore(xml)
    boxes = store.boxes(0)
    boxes[0]["left"] += 1
    store.update(0, boxes, 0, "alice")
    assert stat.S_IMODE(xml.stat().st_mode) == 0o600
    store.close()
