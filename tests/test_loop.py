"""The identification loop closes: `bearid score` a new season -> review its faces in the label
tool -> the XML holds confirmed IDs and new bears -> `bearid ids file` and `bearid data split`
take them -> `bearid train` and `bearid promote` -> the new champion knows them.

The world is the tests' tiny one: its `bear_unknown` photos are season 2, two strangers the
model never saw. The review decides as a curator would, knowing the truth. The retraining
half is marked slow (`make test-all`); the review, filing and split run in `make test`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bearid.data.layout import is_bear_id
from bearid.label.app import Labeler, create_app
from bearid.label.queues import QueueContext
from bearid.label.store import LabelStore
from bearid.metadata import Dataset, ImageEntry, read_faces, write_faces
from bearid.metrics import iou as box_iou


def iou(a, b) -> float:
    return box_iou((a.left, a.top, a.width, a.height), (b.left, b.top, b.width, b.height))


def same_face(truth, found) -> bool:
    """What a person sees: the box is on that face (the tiny test detector's boxes are loose)."""
    cx, cy = found.left + found.width / 2, found.top + found.height / 2
    mx, my = truth.width / 4, truth.height / 4  # a centre just past the edge is still on the face
    return (
        iou(truth, found) >= 0.2
        and truth.left - mx <= cx <= truth.right + mx
        and truth.top - my <= cy <= truth.bottom + my
    )


def bearid(*args, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "300", **env},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done


def review(xml: Path, truth: Dataset) -> dict[str, str]:
    """Settle every face of the scored season through the label tool's API, as a curator who
    knows the truth: a known bear is confirmed, a stranger is a new bear the first time and
    that bear after, a box on no bear is not a bear. Returns stranger -> the ID it was given."""
    by_photo = {truth.path_of(i).resolve(): i for i in truth.images}
    store = LabelStore(xml)
    client = TestClient(create_app(Labeler(store, QueueContext(confident=1.01))))  # every face is reviewed
    named: dict[str, str] = {}
    after = ""
    try:
        while (
            i := client.get("/api/next", params={"queue": "match", "volunteer": "cur", "after": after}).json()["index"]
        ) is not None:
            page = client.get(f"/api/match/{i}").json()
            truth_boxes = by_photo[store.path_of(i).resolve()].boxes
            while page["faces"]:
                face = page["faces"][0]
                box = store.dataset.images[i].boxes[face["face"]]
                best = max(truth_boxes, key=lambda t: iou(t, box), default=None)
                who = best.label if best is not None and same_face(best, box) else None
                body = {"face": face["face"], "version": page["version"], "volunteer": "cur"}
                if who is None or who.endswith("_cub"):
                    body["decision"] = "not_bear"
                elif is_bear_id(who):
                    body.update(decision="same", bear_id=who)
                elif who in named:
                    body.update(decision="same", bear_id=named[who])
                else:
                    body["decision"] = "new"
                done = client.post(f"/api/match/{i}", json=body)
                assert done.status_code == 200, done.text
                if body["decision"] == "new":
                    named[who] = done.json()["bear_id"]
                page = done.json()["match"]
            after = i
    finally:
        store.close()
    return named


@pytest.fixture
def season(splits, bundle_dir, tmp_path):
    """A copy of the world, its season 2 scored by the champion and reviewed, filed and split."""
    world = tmp_path / "world"
    shutil.copytree(splits.parent / "world", world)
    truth = read_faces(world / "_truth" / "faces.xml")
    strangers = {
        b.label for _, b in truth.faces() if b.label and not is_bear_id(b.label) and not b.label.endswith("_cub")
    }
    season2 = [i for i in truth.images if truth.path_of(i).parent.name == "bear_unknown"]
    listing = tmp_path / "season2.xml"
    write_faces(Dataset([ImageEntry(str(truth.path_of(i))) for i in season2], base_dir=tmp_path), listing)
    scored = bearid("score", listing, "--bundle", bundle_dir, "--out", tmp_path / "scores" / "season2.jsonl")
    return world, truth, strangers, tmp_path / "scores" / "season2.xml", scored


def test_a_season_of_strangers_becomes_new_bears_that_the_split_takes(season, bundle_dir, tmp_path):
    world, truth, strangers, xml, scored = season
    assert len(strangers) == 2 and "scored" in scored.stdout
    roster = set(json.loads((bundle_dir / "ids.json").read_text()))
    named = review(xml, truth)
    assert set(named) == strangers and len(set(named.values())) == 2 and not set(named.values()) & roster
    reviewed = read_faces(xml)
    for image in reviewed.images:  # every face of a stranger carries its new ID, and only its
        photo = {truth.path_of(i).resolve(): i for i in truth.images}[reviewed.path_of(image).resolve()]
        for box in image.boxes:
            if box.ignore:
                continue
            best = max(photo.boxes, key=lambda t: iou(t, box))
            if best.label in named:
                assert box.label == named[best.label], (image.file, box.label, best.label)

    filed = bearid("ids", "file", xml, "--archive", world, "--curator", "cur", "--apply")
    assert "photo(s) filed" in filed.stdout, filed.stdout
    for new in named.values():
        assert any(p.parent.name == new for p in world.rglob("*.jpg")), new
    out = tmp_path / "splits2"
    bearid("data", "split", world, "--out", out, "--by", "image", "--min-images", "2",
           "--faces", world / "_truth" / "faces.xml", "--faces", xml)  # fmt: skip
    labels = {b.label for name in ("train", "val", "test") for _, b in read_faces(out / f"{name}.xml").faces()}
    assert set(named.values()) <= labels, labels


@pytest.mark.slow
def test_the_retrained_champion_knows_the_new_bears(season, bundle_dir, tmp_path):
    from conftest import TINY_CHIP, TINY_EMBED, TINY_FACE

    from bearid.exporters.export import export
    from bearid.serving import bundle as bundles
    from bearid.serving.pipeline import Pipeline
    from bearid.training.config import ClassifyConfig, Sweep
    from bearid.training.train import train

    world, truth, strangers, xml, _ = season
    named = review(xml, truth)
    bearid("ids", "file", xml, "--archive", world, "--curator", "cur", "--apply")
    out = tmp_path / "splits2"
    bearid("data", "split", world, "--out", out, "--by", "image", "--min-images", "2",
           "--faces", world / "_truth" / "faces.xml", "--faces", xml)  # fmt: skip
    face = TINY_FACE.model_copy(update={"steps": 500, "refiner_steps": 250})  # a detector as good as season 1's
    report = train(Sweep([face], [TINY_CHIP], [TINY_EMBED], [ClassifyConfig()]), out, tmp_path / "results", log=print)
    bundle = tmp_path / "bundle2"
    export(report.branches[0][-1], bundle, parity_photos=2, log=lambda m: None)
    home = {"BENTOML_HOME": str(tmp_path / "store")}
    bearid("promote", bundle_dir, "--force", **home)  # the season-1 champion
    gate = [out / "train.xml", out / "test.xml"]
    promoted = bearid("promote", bundle, *[a for g in gate for a in ("--gate", g)], **home)
    assert "promoted" in promoted.stdout and "refused" not in promoted.stdout, promoted.stdout
    champion = Pipeline.from_bundle(bundles.load(bundle), threads=1)
    assert set(named.values()) <= set(champion.classifier.ids)
    train_xml = read_faces(out / "train.xml")
    for new in named.values():
        photos = [train_xml.path_of(i) for i in train_xml.images if any(b.label == new for b in i.boxes)]
        answers = [f.bear_id for p in photos for f in champion.identify(p).faces]
        assert new in answers, (new, answers)
