"""Serving without a server: export and bundles, the ONNX Runtime pipeline, hostile photos,
the promotion store, the client's retries and resumable batch scoring."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from bearid.client import BearIDClient, RequestRefused, ServiceUnavailable
from bearid.errors import BearIDError
from bearid.metadata import read_faces
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline


def worse_copy(bundle_dir: Path, dest: Path) -> Path:
    """The same models, worse than any model by construction: every known bear is given a
    name no bear has and no stranger is turned away (BAKS = BAUS = 0)."""
    shutil.copytree(bundle_dir, dest)
    clf = pickle.loads((dest / "classifier.pkl").read_bytes())
    clf.classes_ = np.array([f"not-{name}" for name in clf.classes_])
    clf.threshold_ = -np.inf
    (dest / "classifier.pkl").write_bytes(pickle.dumps(clf))
    (dest / "ids.json").write_text(json.dumps(clf.ids, indent=1))
    fields = {k: v for k, v in bundles.read_manifest(dest).items() if k not in ("format", "version", "files")}
    fields["open_set"].pop("target_met", None)  # no class-stage verdict: the gate alone judges its open set
    bundles.write_manifest(dest, fields)
    return dest


def test_export_writes_a_verified_bundle_with_parity(bundle_dir, trained):
    from bearid.exporters.export import export

    manifest = bundles.verify(bundle_dir)
    assert set(manifest["files"]) == set(bundles.files_of(manifest)) == {*bundles.FILES, "landmarks.onnx"}
    assert manifest["detector"]["kind"] == "centernet" and manifest["landmarks"] == {"kind": "refiner"}
    assert manifest["lineage"]["path"] == "face_config_01/chip_config_01/embed_config_01/class_config_01"
    assert manifest["chip"]["size"] == 150 and manifest["open_set"]["threshold"] is not None
    assert (
        manifest["parity"]["identical_decisions"]
        and manifest["parity"]["photos"] == 4
        and manifest["parity"]["chips"] > 0
    )
    assert max(manifest["parity"]["max_abs_diff"].values()) < 1e-3
    assert {"torch", "onnxruntime", "numpy"} <= set(manifest["libraries"])
    # Exporting the same path again is safe: same models, same version, nothing rewritten.
    again = export(trained[1].branches[0][-1], bundle_dir, parity_photos=1, log=lambda m: None)
    assert again["version"] == manifest["version"]


def test_a_tampered_or_truncated_bundle_is_refused_before_unpickling(bundle_dir, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(bundle_dir, evil)

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "unpickled",))

    (evil / "classifier.pkl").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(BearIDError, match="classifier.pkl"):
        bundles.load(evil)
    # Promotion and the service refuse it too, and still nothing was unpickled.
    from conftest import model_store

    from bearid.exporters.promotion import promote
    from bearid.serving.http import Champion

    with pytest.raises(BearIDError, match="classifier.pkl is .* bytes"):
        promote(evil, [], model_store(tmp_path / "store"), force=True)
    champion = Champion(bundle_dir=evil)
    assert champion.pipeline is None and "classifier.pkl" in champion.error
    assert not (tmp_path / "unpickled").exists()

    cut = tmp_path / "cut"
    shutil.copytree(bundle_dir, cut)
    data = (cut / "embed.onnx").read_bytes()
    (cut / "embed.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BearIDError, match="truncated"):
        bundles.load(cut)
    (cut / "embed.onnx").unlink()
    with pytest.raises(BearIDError, match="missing"):
        bundles.load(cut)
    with pytest.raises(BearIDError, match="not a bundle"):
        bundles.load(tmp_path)


def test_pipeline_answers_in_displayed_pixels_and_matches_the_truth_sizes(pipeline, splits):
    truth = read_faces(splits / "test.xml")
    for image in truth.images[:8]:
        answer = pipeline.identify(truth.path_of(image))
        assert (answer.image.width, answer.image.height) == (image.width, image.height)
        body = answer.model_dump(mode="json")
        assert body["model"]["version"] == pipeline.version
        for face in body["faces"]:
            b = face["box"]
            assert -b["width"] < b["left"] < image.width and -b["height"] < b["top"] < image.height
            assert set(face["landmarks"]) == {"leye", "reye", "nose", "lear", "rear"}
            assert face["bear_id"] is None or face["bear_id"] in pipeline.classifier.ids
            assert face["known"] == (face["bear_id"] is not None)


def test_chips_come_from_a_reduced_decode_only_when_it_holds_the_detail(splits):
    from bearid.chip import ChipSpec, chip_faces, chip_scale
    from bearid.imageio import load_photo

    truth = read_faces(splits / "test.xml")
    image = next(i for i in truth.images if i.boxes)
    path = truth.path_of(image)
    marks = [{k: (float(x), float(y)) for k, (x, y) in b.parts.items()} for b in image.boxes]
    spec = ChipSpec()
    full = [np.asarray(c.image, dtype=float) for c in chip_faces(path, marks, spec, load_photo(path))]
    fresh = [np.asarray(c.image, dtype=float) for c in chip_faces(path, marks, spec)]
    need = max(chip_scale(m, spec) for m in marks)
    for a, b in zip(full, fresh):
        # The same pixels when the chip needs the full photo; close (resampling only) otherwise.
        assert np.abs(a - b).mean() < (0.5 if need >= 1 else 12.0)


def hostile_photos(tmp_path: Path) -> dict[str, bytes]:
    """Photos that must get a clear error or a correct answer, never a crash."""
    rgb = Image.new("RGB", (320, 240), (90, 60, 40))

    def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    jpeg = encoded(rgb, "JPEG")
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # ~100 KB on disk, 900 MP decoded
    sixteen = Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16))
    gif = [Image.new("P", (64, 64), i) for i in range(3)]
    buf = io.BytesIO()
    gif[0].save(buf, "GIF", save_all=True, append_images=gif[1:])
    out = {
        "zero bytes": b"",
        "truncated jpeg": jpeg[: len(jpeg) // 2],
        "truncated png": encoded(rgb, "PNG")[:60],
        "html named jpg": b"<!doctype html><html><body>not a bear</body></html>",
        "decompression bomb": bomb.getvalue(),
        "1x1": encoded(Image.new("RGB", (1, 1)), "PNG"),
        "cmyk jpeg": encoded(rgb.convert("CMYK"), "JPEG"),
        "16-bit png": encoded(sixteen, "PNG"),
        "LA png": encoded(rgb.convert("LA"), "PNG"),
        "P png": encoded(rgb.convert("P"), "PNG"),
        "RGBA png": encoded(rgb.convert("RGBA"), "PNG"),
        "animated gif": buf.getvalue(),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        out[f"exif orientation {orientation}"] = encoded(rgb, "JPEG", exif=exif.tobytes())
    return out


HOSTILE_ERRORS = {"zero bytes", "truncated jpeg", "truncated png", "html named jpg", "decompression bomb"}


def test_hostile_photos_get_a_clear_error_or_an_answer(pipeline, tmp_path):
    for name, data in hostile_photos(tmp_path).items():
        if name in HOSTILE_ERRORS:
            with pytest.raises(BearIDError):
                pipeline.identify(data)
            continue
        answer = pipeline.identify(data)
        if name == "16-bit png":
            from bearid.imageio import load_photo

            assert 150 <= load_photo(data).image.getpixel((0, 0))[0] <= 160  # scaled to 8 bits, not clipped
        upright = (240, 320) if name.startswith("exif orientation") and int(name[-1]) >= 5 else None
        if upright:
            assert (answer.image.width, answer.image.height) == upright, name


def test_promoting_into_a_store_bentoml_does_not_write_to_is_refused(bundle_dir, tmp_path):
    from bearid.serving.store import ModelStore

    with pytest.raises(BearIDError, match="set BENTOML_HOME=.*elsewhere"):
        ModelStore(tmp_path / "elsewhere").add(bundle_dir)
    assert not (tmp_path / "elsewhere").exists()


def test_promotion_gates_on_the_champion_and_rolls_back(bundle_dir, splits, tmp_path):
    from conftest import model_store

    from bearid.exporters.promotion import promote

    store = model_store(tmp_path / "bentoml")
    gate = [splits / "test.xml", splits / "holdout.xml"]
    first = promote(bundle_dir, gate, store, limit=10, accept_open_set_risk=True)  # the tiny model takes strangers
    assert first.promoted and store.champion() == first.version and "open-set risk accepted" in first.reason
    assert bundles.verify(store.path_of(first.version))["version"] == first.version
    worse = worse_copy(bundle_dir, tmp_path / "worse")
    refused = promote(worse, gate, store, limit=10)
    assert refused.candidate["open_set"] == 0 < refused.champion["open_set"]
    assert not refused.promoted and "refused" in refused.reason and store.champion() == first.version
    risky = promote(worse, gate, store, force=True, limit=10)  # it names every stranger as a known bear
    assert not risky.promoted and "--accept-open-set-risk" in risky.reason and risky.candidate["false_accept"] == 1.0
    forced = promote(worse, gate, store, force=True, limit=10, accept_open_set_risk=True)
    assert forced.promoted and store.champion() == forced.version != first.version
    assert store.state()["history"][-1]["open_set_risk_accepted"].startswith("the gate's unknown bears")
    assert store.rollback() == first.version and store.champion() == first.version
    with pytest.raises(BearIDError, match="no earlier champion"):
        store.rollback()
    history = [h["action"] for h in store.state()["history"]]
    assert history == ["promote", "promote", "rollback"]


# -- the client ----------------------------------------------------------------------------
def test_client_retries_busy_servers_but_not_bad_requests():
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        if calls["n"] in (2, 3):
            return httpx.Response(503 if calls["n"] == 2 else 429, headers={"retry-after": "0"})
        return httpx.Response(200, json={"faces": [], "image": {"width": 1, "height": 1}, "model": {"version": "v"}})

    with BearIDClient("http://bearid.test", backoff=0.001, transport=httpx.MockTransport(flaky)) as client:
        assert client.identify(b"photo").model.version == "v"
    assert calls["n"] == 4

    bad = {"n": 0}

    def refuse(request: httpx.Request) -> httpx.Response:
        bad["n"] += 1
        return httpx.Response(400, json={"error": "not a readable image", "code": "bad_image"})

    transport = httpx.MockTransport(refuse)
    with (
        BearIDClient("http://bearid.test", backoff=0.001, transport=transport) as client,
        pytest.raises(RequestRefused, match="not a readable image") as info,
    ):
        client.identify(b"x")
    assert bad["n"] == 1 and info.value.code == "bad_image"

    with (
        BearIDClient(
            "http://bearid.test", retries=2, backoff=0.001, transport=httpx.MockTransport(lambda r: httpx.Response(503))
        ) as client,
        pytest.raises(ServiceUnavailable, match="3 attempts"),
    ):
        client.identify(Image.new("RGB", (4, 4)))


def test_async_client_sends_the_gateway_token_and_headers_and_retries_alike():
    import asyncio

    from bearid.client import AsyncBearIDClient

    seen: list[httpx.Request] = []
    face = {"box": {"left": 1, "top": 2, "width": 3, "height": 4}, "score": 0.9, "landmarks": {"nose": [2, 3]},
            "bear_id": "bf_001", "known": True, "confidence": 0.8, "familiarity": -2.0,
            "candidates": [{"bear_id": "bf_001", "score": 0.8}]}  # fmt: skip
    answer = {"image": {"width": 8, "height": 8}, "faces": [face], "model": {"version": "v"}}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"retry-after": "0"})
        if request.url.path == "/identify_batch":
            return httpx.Response(200, json={"results": [answer, {"error": "no", "code": "bad_image", "status": 400}]})
        if request.url.path == "/model":
            return httpx.Response(200, json={"loaded": True, "version": "v", "ids": ["bf_001"], "open_set": {}})
        return httpx.Response(200, json=answer)

    async def run():
        async with AsyncBearIDClient(
            "http://bearid.test", backoff=0.001, transport=httpx.MockTransport(handle), token="t0k",
            headers={"X-Site": "brooks_falls"},
        ) as client:  # fmt: skip
            one = await client.identify(b"photo")
            batch = await client.identify_batch([b"a", b"b"])
            model = await client.model()
        return one, batch, model

    one, batch, model = asyncio.run(run())
    assert one.faces[0].bear_id == "bf_001" and one.faces[0].box.left == 1 and one.faces[0].landmarks["nose"] == (2, 3)
    assert [i.refused for i in batch.results] == [False, True] and batch.results[1].code == "bad_image"
    assert model.version == "v" and model.ids == ["bf_001"] and model.model_extra == {"open_set": {}}
    assert len(seen) == 4  # the 503 was retried
    assert all(r.headers["authorization"] == "Bearer t0k" and r.headers["x-site"] == "brooks_falls" for r in seen)


def in_process_transport(
    pipeline: Pipeline, fail_after: int | None = None, version: str | None = None
) -> httpx.MockTransport:
    """The service's answers without the server: multipart in, the pipeline's JSON out
    (as if from model `version`, where given); GET /model names the model."""
    count = {"n": 0}
    version = version or pipeline.version

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model":
            return httpx.Response(200, json={"loaded": True, "version": version})
        count["n"] += 1
        if fail_after is not None and count["n"] > fail_after:
            return httpx.Response(400, json={"error": "refused for the test"})
        body = request.read()
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        part = body.split(b"--" + boundary)[1]
        data = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        answer = pipeline.identify(data).model_dump(mode="json")
        return httpx.Response(200, json={**answer, "model": {"version": version}})

    return httpx.MockTransport(handle)


def test_score_offline_with_a_bundle_or_the_champion_answers_as_the_service_would(
    pipeline, bundle_dir, splits, tmp_path
):
    """A field laptop with no network: bearid score --bundle (or --champion) in this process."""
    import os
    import subprocess
    import sys

    from conftest import model_store

    from bearid.exporters.promotion import promote
    from bearid.score import read_journal

    photos = tmp_path / "photos"
    photos.mkdir()
    truth = read_faces(splits / "test.xml")
    for image in truth.images[:5]:
        shutil.copy(truth.path_of(image), photos)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")

    def bearid(*args, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400", **env},
        )  # fmt: skip

    out = tmp_path / "offline.jsonl"
    done = bearid("score", photos, "--bundle", bundle_dir, "--out", out)
    assert done.returncode == 1 and "1 errors" in done.stdout, done.stdout + done.stderr  # the broken photo
    rows = read_journal(out)
    assert len(rows) == 6 and "error" in rows["broken.jpg"]
    for name, row in rows.items():
        if name != "broken.jpg":
            assert row["answer"] == pipeline.identify(photos / name).model_dump(mode="json"), name
    assert out.with_suffix(".xml").is_file() and out.with_suffix(".csv").is_file()
    again = bearid("score", photos, "--bundle", bundle_dir, "--out", out)
    assert "1 scored now, 5 already scored" in again.stdout, again.stdout  # errors are asked again
    store = tmp_path / "store"
    promote(bundle_dir, [], model_store(store), force=True)
    champ = bearid("score", photos, "--champion", "--out", tmp_path / "champ.jsonl", BEARID_STORE=str(store))
    assert champ.returncode == 1 and f"(model {pipeline.version})" in champ.stdout, champ.stdout + champ.stderr
    both = bearid("score", photos, "--champion", "--bundle", bundle_dir, "--out", tmp_path / "x.jsonl")
    assert both.returncode == 2 and "not both" in both.stderr + both.stdout
    none = bearid("score", photos, "--champion", "--out", tmp_path / "y.jsonl", BEARID_STORE=str(tmp_path / "empty"))
    assert none.returncode == 2 and "no champion" in none.stderr + none.stdout


def test_score_is_resumable_and_writes_xml_and_csv(pipeline, splits, tmp_path):
    from bearid.score import read_journal, score

    photos = tmp_path / "photos"
    photos.mkdir()
    truth = read_faces(splits / "test.xml")
    for image in truth.images[:6]:
        shutil.copy(truth.path_of(image), photos)
    out = tmp_path / "scores" / "results.jsonl"
    with BearIDClient("http://bearid.test", transport=in_process_transport(pipeline, fail_after=4)) as client:
        first = score(photos, client, out, concurrency=2)
    assert first.scored == 6 and first.errors == 2
    with open(out, "a") as fh:
        fh.write('{"photo": "torn')  # a run killed mid-line
    with BearIDClient("http://bearid.test", transport=in_process_transport(pipeline)) as client:
        second = score(photos, client, out, concurrency=2)
    assert second.skipped == 4 and second.scored == 2 and second.errors == 0 and second.outdated == 0
    with BearIDClient(
        "http://bearid.test", transport=in_process_transport(pipeline, version="a-newer-model")
    ) as client:
        third = score(photos, client, out, concurrency=2)
    assert third.scored == 6 and third.outdated == 6 and third.skipped == 0  # a new champion: every answer asked again
    assert {r["answer"]["model"]["version"] for r in read_journal(out).values()} == {"a-newer-model"}
    rows = read_journal(out)
    assert len(rows) == 6 and all("answer" in r for r in rows.values())
    predictions = read_faces(out.with_suffix(".xml"))
    assert len(predictions.images) == 6
    assert sum(len(i.boxes) for i in predictions.images) == sum(len(r["answer"]["faces"]) for r in rows.values())
    import dlib

    dlib.image_dataset_metadata.load_image_dataset_metadata(str(out.with_suffix(".xml")))
    header = out.with_suffix(".csv").read_text().splitlines()[0]
    assert header == "bear_id,photos,faces,mean_confidence"


def test_a_bundle_exported_before_the_detector_kinds_still_serves(bundle_dir, tmp_path, pipeline, splits):
    """Bundles of earlier releases: no detector kind, no landmark model record, no embedding
    normalisation in the manifest. They are centernet bundles with BearID's normalisation."""
    import json
    import shutil

    from bearid.metadata import read_faces

    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["detector"]["kind"], manifest["landmarks"], manifest["embed"]["normalisation"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    again = Pipeline.from_bundle(bundles.load(old), threads=1)
    truth = read_faces(splits / "test.xml")
    photos = [truth.path_of(i) for i in truth.images if i.boxes][:3]
    answers = [again.identify(p).model_dump(mode="json")["faces"] for p in photos]
    assert answers == [pipeline.identify(p).model_dump(mode="json")["faces"] for p in photos] and any(answers)


# What the service sent for these two faces before the pipeline answered in schema models
# (its own Face/Answer and an as_json dict): the wire format must not move by a byte.
WIRE_BEFORE = (
    '{"image":{"width":708,"height":472},"faces":[{"box":{"left":10.5,"top":20.0,"width":100.0,"height":101.2},'
    '"score":0.9312,"landmarks":{"leye":[30.1,40.2],"reye":[60.0,40.0],"nose":[45.0,70.3],"lear":[12.0,22.0],'
    '"rear":[90.0,21.5]},"bear_id":"bf_511","known":true,"confidence":0.5712,"familiarity":-12.3456,'
    '"candidates":[{"bear_id":"bf_511","score":0.5712},{"bear_id":"bf_032","score":0.2}]},{"box":{"left":300.0,'
    '"top":200.0,"width":12.0,"height":12.0},"score":0.41,"landmarks":{"leye":[301.0,202.0],"reye":[305.0,202.0],'
    '"nose":[303.0,207.0],"lear":[300.5,200.5],"rear":[310.0,200.5]},"bear_id":null,"known":false,"confidence":0.0,'
    '"familiarity":0.0,"candidates":[],"problem":"too small to chip"}],"model":{"version":"92b03156e5c4"}}'
)


def test_an_answer_on_the_wire_is_byte_identical_to_before():
    from bearid.classify import Prediction
    from bearid.face import Detection
    from bearid.serving.pipeline import face_answer
    from bearid.serving.schema import BatchItem, Identified, ImageSize, ModelRef

    named = Detection(
        10.54, 19.98, 100.01, 101.23, 0.93118,
        {"leye": (30.14, 40.2), "reye": (60.0, 40.01), "nose": (45.0, 70.3), "lear": (12.0, 22.0),
         "rear": (90.0, 21.5)},
    )  # fmt: skip
    small = Detection(
        300.0, 200.0, 12.0, 12.0, 0.41,
        {"leye": (301.0, 202.0), "reye": (305.0, 202.0), "nose": (303.0, 207.0), "lear": (300.5, 200.5),
         "rear": (310.0, 200.5)},
    )  # fmt: skip
    bear = Prediction("bf_511", True, 0.571204, [("bf_511", 0.571204), ("bf_032", 0.20001)], -12.34561)
    faces = [face_answer(named, bear), face_answer(small, None, "too small to chip")]
    answer = Identified(image=ImageSize(width=708, height=472), faces=faces, model=ModelRef(version="92b03156e5c4"))
    assert answer.model_dump_json() == WIRE_BEFORE
    assert BatchItem.model_validate(answer, from_attributes=True).model_dump_json() == WIRE_BEFORE


def test_promotion_refuses_a_bundle_whose_open_set_misses_its_target_unless_told(bundle_dir, splits, tmp_path):
    from conftest import model_store

    from bearid.exporters.promotion import open_set_risk, promote, wilson

    copy = tmp_path / "capped"
    shutil.copytree(bundle_dir, copy)
    fields = {k: v for k, v in bundles.read_manifest(copy).items() if k not in ("format", "version", "files")}
    fields["open_set"] = {**fields["open_set"], "target_met": False}  # what a capped threshold records
    bundles.write_manifest(copy, fields)
    store = model_store(tmp_path / "bentoml")
    gate = [splits / "test.xml", splits / "holdout.xml"]
    refused = promote(copy, gate, store, limit=10)
    assert not refused.promoted and "no threshold meeting" in refused.reason and store.champion() is None
    assert promote(copy, gate, store, limit=10, accept_open_set_risk=True).promoted
    assert "no threshold meeting" in store.state()["history"][-1]["open_set_risk_accepted"]
    plain = tmp_path / "plain"  # the tiny world's class stage misses its target: leave its verdict out
    shutil.copytree(bundle_dir, plain)
    fields["open_set"].pop("target_met")
    bundles.write_manifest(plain, fields)
    bundle = bundles.load(plain)
    target = bundle.manifest["open_set"]["target_far"]
    assert open_set_risk(bundle, {"false_accept": 0.2, "unknown_faces": 5, "unknown_bears": 2}) is None  # too few
    assert "above the target" in open_set_risk(bundle, {"false_accept": 0.5, "unknown_faces": 200, "unknown_bears": 9})
    low, high = wilson(target, 400)
    assert low < target < high and open_set_risk(bundle, {"false_accept": target, "unknown_faces": 400}) is None


def test_models_with_different_rosters_are_compared_on_the_bears_they_share():
    """A candidate that learned bear N is a known bear's model for N, the champion a stranger's:
    left out of both, the two answer the same question and the better one wins."""
    from bearid.evaluate import tally
    from bearid.metadata import Box

    def face(x: int, bear: str | None) -> dict:
        return {"box": {"left": x, "top": 0, "width": 10, "height": 10}, "bear_id": bear, "candidates": []}

    truth = [Box(x, 0, 10, 10, label=b) for x, b in ((0, "A"), (20, "B"), (40, "N"), (60, "S"))]
    candidate = [({"faces": [face(0, "A"), face(20, "A"), face(40, "A"), face(60, None)]}, truth)]  # N: hard
    champion = [({"faces": [face(0, "A"), face(20, "A"), face(40, None), face(60, None)]}, truth)]
    # N counts for one only: the candidate is marked down for a bear the champion was never asked to name
    assert tally(candidate, {"A", "B", "N"})["baks"] < tally(champion, {"A", "B"})["baks"]
    ours = tally(candidate, {"A", "B", "N"}, frozenset({"N"}))
    theirs = tally(champion, {"A", "B"}, frozenset({"N"}))
    assert ours == theirs and ours["baks"] == 0.5 and ours["baus"] == 1.0 and ours["unknown_bears"] == 1
    assert ours["face_recall"] == 1.0 and ours["faces"] == 4  # every face still counts for finding it
