"""The real service: `bentoml serve` as a subprocess with 2 workers on a random loopback
port, answering synthetic photos over HTTP, refusing hostile ones with 4xx, exporting its
metrics, and switching champions under load without failing a request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from test_serving import HOSTILE_ERRORS, hostile_photos, worse_copy

from bearid.client import BearIDClient, RequestRefused
from bearid.metadata import read_faces
from bearid.serving import bundle as bundles

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    from conftest import model_store

    from bearid.exporters.promotion import promote
    from bearid.serving.localserver import LocalServer

    home = tmp_path_factory.mktemp("bentoml")
    store = model_store(home)
    promote(bundle_dir, [], store, force=True)
    env = dict(
        BEARID_STORE=str(home),
        BEARID_WATCH_SECONDS="0.5",
        BEARID_ADMIN_TOKEN=TOKEN,
        BEARID_MAX_UPLOAD_MB="2",
        BEARID_ORT_THREADS="1",
    )
    with LocalServer(workers=2, env=env, log=home / "server.log") as url:
        yield url, store


def test_identify_over_http_matches_the_pipeline_and_the_truth(server, pipeline, splits):
    from bearid.evaluate import tally

    url, _ = server
    truth = read_faces(splits / "test.xml")
    images = truth.images[:10]
    answers = []
    with BearIDClient(url) as client:
        for image in images:
            answer = client.identify(truth.path_of(image))
            assert answer == pipeline.identify(truth.path_of(image))
            assert (answer.image.width, answer.image.height) == (image.width, image.height)
            wire = answer.model_dump(mode="json")
            assert wire == pipeline.identify(truth.path_of(image)).model_dump(mode="json")  # the JSON the service sent
            answers.append((wire, [b for b in image.boxes if b.label]))
    # Against the ground truth: the small test model finds most faces (boxes at IoU >= 0.5).
    scores = tally([a for a in answers if a[1]], set(pipeline.classifier.ids))
    assert scores["faces"] >= 5 and scores["face_recall"] >= 0.6, scores
    batch = httpx.post(
        f"{url}/identify_batch", files=[("photos", truth.path_of(i).read_bytes()) for i in images[:3]], timeout=60
    )
    assert batch.status_code == 200
    assert batch.json()["results"] == [a for a, _ in answers[:3]]
    with BearIDClient(url) as client:
        model = client.model()
    assert model.version == pipeline.version and model.ids == pipeline.classifier.ids
    with BearIDClient(url) as client:
        items = client.identify_batch([truth.path_of(i) for i in images[:2]] + [b"not a photo"]).results
        assert client.ready()
    assert [i.refused for i in items] == [False, False, True] and items[2].status == 400
    assert items[0].answer().model_dump(mode="json") == answers[0][0]
    assert httpx.get(f"{url}/livez").status_code == 200


def test_bad_input_gets_4xx_json_and_the_service_keeps_answering(server, splits, tmp_path):
    url, _ = server
    truth = read_faces(splits / "test.xml")
    good = truth.path_of(truth.images[0]).read_bytes()
    cases = {name: {"files": {"photo": ("x.jpg", data)}} for name, data in hostile_photos(tmp_path).items()}
    cases["wrong field"] = {"files": {"picture": ("x.jpg", good)}}
    cases["no multipart"] = {"json": {"photo": "x"}}
    cases["a URL, not a file"] = {"data": {"photo": "http://127.0.0.1:9/bear.jpg"}, "files": {}}
    cases["huge body"] = {"files": {"photo": ("x.jpg", b"\xff" * (3 * 1024 * 1024))}}
    for name, request in cases.items():
        r = httpx.post(f"{url}/identify", timeout=60, **request)
        expect_error = name in HOSTILE_ERRORS or name in (
            "wrong field",
            "no multipart",
            "huge body",
            "a URL, not a file",
        )
        if expect_error:
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
            assert r.json()["error"], name
        else:
            assert r.status_code == 200, (name, r.text)
        assert httpx.post(f"{url}/identify", files={"photo": ("ok.jpg", good)}, timeout=60).status_code == 200, (
            f"after {name}"
        )
    with BearIDClient(url) as client, pytest.raises(RequestRefused, match="HTTP 413"):
        client.identify(b"\xff" * (3 * 1024 * 1024))


def test_metrics_carry_bearid_series_from_both_workers(server, splits):
    url, _ = server
    truth = read_faces(splits / "test.xml")
    with BearIDClient(url) as client:
        list(client.identify_many([truth.path_of(i) for i in truth.images[:8]], concurrency=4))
    text = httpx.get(f"{url}/metrics").text
    for series in ("bearid_faces_per_photo_count", "bearid_stage_seconds_bucket", "bearid_refused_requests_total"):
        assert series in text, series
    assert 'stage="embed"' in text and "model_version=" in text


def test_promote_and_rollback_under_load_fail_no_request(server, bundle_dir, splits, tmp_path):
    from bearid.exporters.promotion import promote

    url, store = server
    old = store.champion()
    new = bundles.verify(worse_copy(bundle_dir, tmp_path / "worse"))["version"]
    truth = read_faces(splits / "test.xml")
    photo = truth.path_of(truth.images[0]).read_bytes()
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                r = http.post(f"{url}/identify", files={"photo": ("p.jpg", photo)})
                seen.append((r.status_code, r.json().get("model", {}).get("version") if r.status_code == 200 else None))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        promote(tmp_path / "worse", [], store, force=True)
        assert _wait_for_version(seen, new), "the service did not switch to the new champion"
        assert httpx.post(f"{url}/admin/reload").status_code == 401
        reload = httpx.post(f"{url}/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        assert reload.status_code == 200 and reload.json()["version"] == new
        store.rollback()
        assert _wait_for_version(seen, old), "the service did not roll back"
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and all(status == 200 for status, _ in seen), {s for s, _ in seen}
    assert {v for _, v in seen} == {old, new}


def _wait_for_version(seen: list, version: str, timeout: float = 30) -> bool:
    """True once a few answers in a row (both workers) came from `version`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(seen) >= 6 and all(v == version for _, v in seen[-6:]):
            return True
        time.sleep(0.2)
    return False


def test_a_short_load_run_has_no_server_errors(server, splits):
    """The load script's smoke run (bench/load.py runs it for minutes by hand)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from load import load_run

    url, _ = server
    truth = read_faces(splits / "test.xml")
    report = load_run(url, [truth.path_of(i).read_bytes() for i in truth.images[:4]], seconds=4, concurrency=4)
    assert report.requests >= 4 and report.server_errors == 0 and report.transport_errors == 0
    assert report.statuses[200] == report.requests and report.p99_ms >= report.p50_ms > 0


def test_schema_fuzzing_from_the_openapi_document_finds_no_server_error(server):
    """schemathesis generates requests from the service's own OpenAPI document."""
    import subprocess
    import sys

    url, _ = server
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{url}/docs.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_openapi_document_types_every_answer_and_error_and_names_the_version(server):
    """A field-app developer generates a client from /docs.json: it must say what comes back."""
    from bearid import __version__

    url, _ = server
    doc = httpx.get(f"{url}/docs.json", timeout=30).json()
    assert doc["info"]["version"] == __version__
    schemas = doc["components"]["schemas"]

    def answer(path: str, method: str, status: str) -> dict:
        return doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]

    identify = answer("/identify", "post", "200")  # BentoML inlines the answer's own schema
    assert identify["required"] == ["image", "faces", "model"] and identify.get("additionalProperties") is not False
    assert identify["properties"]["faces"]["items"]["$ref"].endswith("/Face")
    assert doc["paths"]["/identify"]["post"]["responses"]["200"]["content"]["application/json"]["example"]["faces"]
    face = schemas["Face"]
    assert face.get("additionalProperties") is not False and {"box", "landmarks", "bear_id", "candidates"} <= set(
        face["properties"]
    )
    assert answer("/identify_batch", "post", "200")["properties"]["results"]["items"]["$ref"].endswith("/BatchItem")
    for status in ("400", "413", "415", "503"):
        assert answer("/identify", "post", status)["$ref"].endswith("/Refused"), status
    assert set(schemas["Refused"]["properties"]) == {"error", "code"}
    assert answer("/model", "get", "200")["$ref"].endswith("/ModelInfo")
    assert answer("/admin/reload", "post", "401")["$ref"].endswith("/Refused")
