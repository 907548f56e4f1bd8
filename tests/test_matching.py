"""The match review: faces the model could not name are settled by a person, side by side with
the bears they could be. Each way Wildbook's match page has lost people's trust is a test here:
a new ID that is not given, a confirmation that makes a second individual instead of joining
the first, a decision missing from the audit trail."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_label import dlib_loads

from bearid.errors import BearIDError
from bearid.label.app import Labeler, create_app
from bearid.label.identities import next_free, parse_prefixes, prefix_for
from bearid.label.store import Conflict, LabelStore
from bearid.metadata import read_faces, write_faces
from bearid.metadata.candidates import CANDIDATES, decode, encode
from bearid.references import references


@pytest.fixture
def scored(splits, tmp_path) -> Path:
    return make_scored(splits, tmp_path)


def make_scored(splits: Path, tmp_path: Path) -> Path:
    """Labelled photos as `bearid score` leaves them: the last three faces unknown or unsure,
    with the model's candidates on every box."""
    dataset = read_faces(splits / "train.xml")
    dataset.images = [image for image in dataset.images if image.boxes][:12]
    ids = dataset.labels()
    faces = [box for _, box in dataset.faces()]
    for box in faces:
        others = [b for b in ids if b != box.label][:2]
        box.attrs[CANDIDATES] = encode(
            [{"bear_id": box.label, "score": 0.55}] + [{"bear_id": b, "score": 0.2} for b in others]
        )
        box.attrs.update(known="true", confidence="0.9500")
    faces[-1].label, faces[-1].attrs["known"] = None, "false"  # unknown
    faces[-2].attrs["confidence"] = "0.4100"  # named, unsure
    faces[-3].label, faces[-3].attrs["known"] = None, "false"
    xml = tmp_path / "results.xml"
    write_faces(dataset, xml)
    return xml


def waiting(store: LabelStore) -> list[tuple[int, int]]:
    labeler = Labeler(store)
    return [(i, f["face"]) for i in labeler.members("match") for f in labeler.match(i)["faces"]]


def test_candidates_round_trip_through_the_box_attribute():
    found = [{"bear_id": "bf_051", "score": 0.61}, {"bear_id": "bf_022", "score": 0.2}]
    assert decode(encode(found)) == found
    assert decode("bf_051:0.5 junk bf_1:nan :0.3") == [{"bear_id": "bf_051", "score": 0.5}]


def test_ids_follow_the_site_convention_and_are_never_given_twice(scored):
    dataset = read_faces(scored)
    assert prefix_for("brooks_falls", dataset) == "bf" and prefix_for("glendale_cove", dataset, {"x": "q"}) == "gc"
    assert prefix_for("lake_clark_camp", dataset) == "lcc"  # no bears there yet: its initials
    assert prefix_for("lake_clark_camp", dataset, parse_prefixes(["lake_clark_camp=lc"])) == "lc"
    assert next_free("bf", ["bf_051", "bf_9", "gc_300", "bf_x"]) == "bf_052"
    with pytest.raises(BearIDError, match="LOCATION=PREFIX"):
        parse_prefixes(["brooks_falls"])


def test_a_new_bear_gets_the_next_free_id_its_name_and_dlib_still_loads_the_xml(scored):
    store = LabelStore(scored)
    (i, face), *_ = waiting(store)
    match = Labeler(store).match(i)
    expected = match["new_id"]
    prefix = match["prefix"]
    assert expected == next_free(prefix, store.known_ids())
    done = store.decide(i, face, "new", store.versions[i], "carol", prefix=prefix, name="Otis")
    assert done["bear_id"] == expected and read_faces(scored).images[i].boxes[face].label == expected
    assert store.bears[expected]["name"] == "Otis" and store.bears[expected]["volunteer"] == "carol"
    assert dlib_loads(scored) == len(read_faces(scored).images)
    store.close()
    again = LabelStore(scored)  # the register survives a restart, and the ID is never given again
    assert expected in again.known_ids() and again.bears[expected]["name"] == "Otis"
    boxes = again.boxes(i)
    boxes[face]["label"] = read_faces(scored).labels()[0]  # the new bear's only face relabelled
    again.update(i, boxes, again.versions[i], "carol")
    j, other = next(w for w in waiting(again) if w != (i, face))
    number = int(expected.split("_")[1])
    assert again.decide(j, other, "new", again.versions[j], "carol", prefix=prefix)["bear_id"] == (
        f"{prefix}_{number + 1:03d}"
    )


def test_two_volunteers_naming_new_bears_at_once_get_two_ids(scored):
    store = LabelStore(scored)
    (i, a), (j, b), *_ = waiting(store)
    got, errors = [], []

    def name(photo: int, face: int, who: str) -> None:
        for _ in range(20):  # a Conflict when both faces are on one photo: reload and try again, as the page does
            try:
                got.append(store.decide(photo, face, "new", store.versions[photo], who, prefix="bf")["bear_id"])
                return
            except Conflict:
                continue
            except BearIDError as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=name, args=(i, a, "ann")), threading.Thread(target=name, args=(j, b, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 2 and len(set(got)) == 2, got
    assert {box.label for _, box in read_faces(scored).faces()} >= set(got)


def test_a_confirmation_joins_the_known_bear_and_never_makes_a_second_one(scored):
    store = LabelStore(scored)
    before = set(read_faces(scored).labels())
    (i, face), *_ = waiting(store)
    known = sorted(before)[0]
    store.decide(i, face, "same", store.versions[i], "dave", bear_id=f"  {known.upper()} ")
    after = read_faces(scored)
    assert after.images[i].boxes[face].label == known and set(after.labels()) == before
    (j, other), *_ = waiting(store)
    with pytest.raises(BearIDError, match="not a bear of this XML"):
        store.decide(j, other, "same", store.versions[j], "dave", bear_id="bf_999")
    assert read_faces(scored).images[j].boxes[other].label == after.images[j].boxes[other].label
    with pytest.raises(Conflict):
        store.decide(i, face, "same", store.versions[i] - 1, "dave", bear_id=known)


def test_every_decision_is_in_the_audit_trail_with_who_matched_it(scored):
    store = LabelStore(scored)
    todo = waiting(store)
    assert len(todo) == 3
    (i1, f1), (i2, f2), (i3, f3) = todo
    known = store.dataset.labels()[0]
    store.decide(i1, f1, "unsure", store.versions[i1], "erin", shown=[{"bear_id": known, "score": 0.4}])
    store.decide(i2, f2, "not_bear", store.versions[i2], "erin")
    store.decide(i3, f3, "same", store.versions[i3], "frank", bear_id=known, model="abc123")
    entries = [e for e in store.history() if e.get("kind") == "match" or "match" in e]
    assert len(entries) == 3
    for e, who, decision in zip(entries, ["erin", "erin", "frank"], ["unsure", "not_bear", "same"]):
        m = e.get("match", e)
        assert m["matched_by"] == who and m["decision"] == decision and e["time"] and e["file"], e
    assert entries[0]["shown"] == [{"bear_id": known, "score": 0.4}] and entries[2]["match"]["model"] == "abc123"
    saved = read_faces(scored)
    assert saved.images[i2].boxes[f2].ignore and saved.images[i2].boxes[f2].label is None
    assert saved.images[i3].boxes[f3].attrs["matched_by"] == "frank"
    assert dlib_loads(scored) == len(saved.images)
    assert waiting(store) == [(i1, f1)]  # "can't tell" keeps the face waiting


def test_references_are_the_clearest_faces_one_per_date_first(scored):
    dataset = read_faces(scored)
    bear = dataset.labels()[0]
    refs = references(dataset, bear, k=3, parts=("leye", "reye", "nose"))
    assert refs and all(dataset.images[r.image].boxes[r.face].label == bear for r in refs)
    dates = [r.date for r in refs]
    assert len(set(dates)) == len(dates) or len(refs) == len({(r.image, r.face) for r in refs})


def test_the_match_api_shows_candidates_with_references_and_takes_a_decision(scored):
    store = LabelStore(scored)
    client = TestClient(create_app(Labeler(store)))
    first = client.get("/api/next", params={"queue": "match", "volunteer": "gina"}).json()["index"]
    page = client.get(f"/api/match/{first}").json()
    face = page["faces"][0]
    assert face["reason"] and face["candidates"] and face["source"] == "bearid score"
    top = face["candidates"][0]
    assert top["references"] and top["score"] is not None
    chip = client.get(face["chip"])
    assert chip.status_code == 200 and chip.headers["content-type"] == "image/jpeg"
    assert client.get(top["references"][0]["chip"]).status_code == 200
    bad = client.post(
        f"/api/match/{first}", json={"face": face["face"], "decision": "maybe", "version": 0, "volunteer": "gina"}
    )
    assert bad.status_code == 400 and "decision" in bad.json()["error"]
    done = client.post(
        f"/api/match/{first}",
        json={
            "face": face["face"],
            "decision": "same",
            "bear_id": top["bear_id"],
            "version": page["version"],
            "volunteer": "gina",
        },
    ).json()
    assert done["bear_id"] == top["bear_id"] and done["version"] == page["version"] + 1
    stale = client.post(
        f"/api/match/{first}",
        json={"face": face["face"], "decision": "unsure", "version": page["version"], "volunteer": "gina"},
    )
    assert stale.status_code == 409
    assert client.get(f"/api/bears/{top['bear_id']}").json()["references"]
    assert client.get("/api/bears/zz_000").status_code == 404


def test_merge_and_split_reach_the_archive_as_a_plan_and_undo_puts_everything_back(splits, tmp_path):
    import shutil
    import subprocess
    import sys

    from bearid.data.layout import photos_under

    world = tmp_path / "world"
    shutil.copytree(splits.parent / "world", world)
    xml = tmp_path / "faces.xml"
    write_faces(read_faces(world / "_truth" / "faces.xml"), xml)
    files_before = sorted(p.relative_to(world) for p in photos_under(world))
    truth = read_faces(xml)
    ids = truth.labels()
    keep, gone = ids[0], ids[1]
    gone_faces = sum(1 for _, b in truth.faces() if b.label == gone)

    def bearid(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip

    plan = bearid("ids", "merge", xml, keep, gone, "--curator", "anna", "--archive", world)
    assert plan.returncode == 0 and "would move" in plan.stdout and f"/{gone}/" in plan.stdout, (
        plan.stdout + plan.stderr
    )
    assert sorted(p.relative_to(world) for p in photos_under(world)) == files_before  # a plan: nothing moved
    merged = read_faces(xml)
    assert gone not in merged.labels() and sum(1 for _, b in merged.faces() if b.label == keep) >= gone_faces
    assert dlib_loads(xml) == len(merged.images)
    [op] = [o for o in operations_of(xml) if o["kind"] == "merge"]
    undone = bearid("ids", "undo", xml, op["id"], "--curator", "anna", "--archive", world)
    assert undone.returncode == 0, undone.stderr
    assert [(b.label) for _, b in read_faces(xml).faces()] == [b.label for _, b in truth.faces()]

    applied = bearid("ids", "merge", xml, keep, gone, "--curator", "anna", "--archive", world, "--apply")
    assert applied.returncode == 0 and "moved" in applied.stdout, applied.stdout + applied.stderr
    moved = read_faces(xml)
    assert all(moved.path_of(image).is_file() for image in moved.images)  # the XML follows the files
    assert not any(f"/{gone}/" in moved.path_of(image).as_posix() for image in moved.images if image.boxes)
    assert len(photos_under(world)) == len(files_before)  # moved, never deleted
    [op] = [o for o in operations_of(xml) if o["kind"] == "merge"][-1:]
    assert bearid("ids", "undo", xml, op["id"], "--curator", "anna", "--archive", world).returncode == 0
    assert sorted(p.relative_to(world) for p in photos_under(world)) == files_before
    back = read_faces(xml)
    assert [b.label for _, b in back.faces()] == [b.label for _, b in truth.faces()]
    assert all(back.path_of(image).is_file() for image in back.images)

    # A split: two faces of `keep` become a new bear, and back.
    faces = [(i, n) for i, image in enumerate(back.images) for n, b in enumerate(image.boxes) if b.label == keep][:2]
    done = bearid("ids", "split", xml, "--faces", ",".join(f"{i}:{n}" for i, n in faces), "--prefix", "bf",
                  "--curator", "anna", "--name", "Twin")  # fmt: skip
    assert done.returncode == 0 and "new bear bf_" in done.stdout, done.stdout + done.stderr
    new = done.stdout.split("new bear ")[1].split()[0]
    assert new not in ids and [read_faces(xml).images[i].boxes[n].label for i, n in faces] == [new, new]
    refused = bearid("ids", "split", xml, "--faces", "0:99", "--prefix", "bf", "--curator", "anna")
    assert refused.returncode == 2 and "no face 99" in refused.stderr
    listed = bearid("ids", "list", xml).stdout
    assert "merge" in listed and "split" in listed and "undo" in listed


def operations_of(xml: Path) -> list[dict]:
    store = LabelStore(xml)
    try:
        return store.operations()
    finally:
        store.close()
