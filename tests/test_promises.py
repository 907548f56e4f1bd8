"""Interfaces that keep their promises (#35): the client survives version skew and fails fast,
bad input is an error rather than a traceback or a silent no-op, and the API document says
what is true. No trained model, no server: mock transports, an ASGI guard called directly,
and at most a stdlib HTTP server in a thread."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError
from test_trust import bearid, refused

from bearid.client import AsyncBearIDClient, BearIDClient, RequestRefused, ServiceUnavailable, retry_after_s
from bearid.errors import BearIDError
from bearid.serving.schema import EXAMPLE, Identified

FACE = {
    "box": {"left": 1.0, "top": 2.0, "width": 3.0, "height": 4.0},
    "score": 0.9,
    "landmarks": {"leye": [1, 1], "reye": [2, 1], "nose": [1.5, 2], "lear": [0, 0], "rear": [3, 0]},
    "bear_id": "bf_001",
    "known": True,
    "confidence": 0.8,
    "familiarity": 2.5,
    "candidates": [{"bear_id": "bf_001", "score": 0.8}],
}
ANSWER = {"image": {"width": 8, "height": 8}, "faces": [FACE], "model": {"version": "92b03156e5c4"}}


def client(handler, **kw) -> BearIDClient:
    return BearIDClient("http://bearid.test", transport=httpx.MockTransport(handler), **{"backoff": 0.001, **kw})


# -- the client survives version skew --------------------------------------------------------
def test_an_older_client_reads_a_newer_answer_and_keeps_the_fields_it_does_not_know():
    newer_face = {**FACE, "pose": {"yaw": 12.5}}
    newer = {**ANSWER, "faces": [newer_face], "request_id": "r-17"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/identify_batch":
            return httpx.Response(200, json={"results": [newer], "took_ms": 4})
        return httpx.Response(200, json=newer)

    with client(handle) as bears:
        answer = bears.identify(b"photo")
        batch = bears.identify_batch([b"photo"])
    assert answer.model_extra == {"request_id": "r-17"} and answer.faces[0].model_extra == {"pose": {"yaw": 12.5}}
    assert answer.faces[0].bear_id == "bf_001"  # the fields it knows, read as ever
    dumped = answer.model_dump(mode="json", exclude_unset=True)
    assert dumped["request_id"] == "r-17" and dumped["faces"][0]["pose"] == {"yaw": 12.5}  # kept in the journal
    assert batch.model_extra == {"took_ms": 4}
    item = batch.results[0].answer()
    assert item.model_extra == {"request_id": "r-17"} and item.faces[0].model_extra == {"pose": {"yaw": 12.5}}
    # What it knows is still checked: a known field of the wrong type is refused.
    with pytest.raises(ValidationError):
        Identified.model_validate({**ANSWER, "faces": "none"})


def test_an_answer_that_is_not_json_or_not_the_schemas_is_a_bearid_error_naming_the_url_and_status():
    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a captive portal</html>")

    def not_ours(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"image": {"width": 8}, "faces": []})

    for handler, words in ((not_json, "not JSON"), (not_ours, "not a Identified")):
        with client(handler) as bears, pytest.raises(BearIDError) as info:
            bears.identify(b"photo")
        assert not isinstance(info.value, (ValidationError, json.JSONDecodeError))
        assert "http://bearid.test/identify" in str(info.value) and "HTTP 200" in str(info.value), info.value
        assert words in str(info.value)

    async def run() -> BearIDError:
        async with AsyncBearIDClient("http://bearid.test", transport=httpx.MockTransport(not_ours)) as bears:
            try:
                await bears.model()
            except BearIDError as exc:
                return exc
        raise AssertionError("no error")

    exc = asyncio.run(run())
    assert "http://bearid.test/model: HTTP 200" in str(exc) and "ModelInfo" in str(exc)


# -- the client fails fast where retrying cannot help -------------------------------------------
def test_a_url_that_can_never_work_fails_at_once():
    for url in ("notaurl", "htp://bearid.test", "localhost:3000", "http://"):
        start = time.monotonic()
        with pytest.raises(BearIDError, match="not a service URL"):
            BearIDClient(url)
        assert time.monotonic() - start < 1, url
    calls = {"n": 0}

    def unsupported(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'htp://'.")

    start = time.monotonic()
    with client(unsupported) as bears, pytest.raises(BearIDError, match="UnsupportedProtocol") as info:
        bears.identify(b"photo")
    assert calls["n"] == 1 and not isinstance(info.value, ServiceUnavailable)
    assert time.monotonic() - start < 1


def test_what_the_server_refuses_for_good_is_not_asked_again():
    for status in (400, 401, 404, 413, 500):
        calls = {"n": 0}

        def handle(request: httpx.Request, status=status, calls=calls) -> httpx.Response:
            calls["n"] += 1
            return httpx.Response(status, json={"error": "no", "code": "bad_image"})

        with client(handle) as bears, pytest.raises(RequestRefused) as info:
            bears.identify(b"photo")
        assert calls["n"] == 1 and info.value.status == status
    for status in (429, 502, 503, 504):  # transient: asked again, and the last words are kept
        calls = {"n": 0}

        def busy(request: httpx.Request, status=status, calls=calls) -> httpx.Response:
            calls["n"] += 1
            return httpx.Response(status, json={"error": "loading the champion", "code": "no_model"})

        with client(busy, retries=2) as bears, pytest.raises(ServiceUnavailable) as gave_up:
            bears.identify(b"photo")
        assert calls["n"] == 3 and f"HTTP {status}: loading the champion" in str(gave_up.value), gave_up.value


def test_retry_after_in_seconds_is_honoured():
    seen: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(429, headers={"retry-after": "1"}, json={"error": "busy", "code": "busy"})
        return httpx.Response(200, json=ANSWER)

    with client(handle, backoff=5.0) as bears:  # the header, not the backoff, sets the wait
        assert bears.identify(b"photo").model.version == "92b03156e5c4"
    assert len(seen) == 2 and 0.9 <= seen[1] - seen[0] < 3, seen


def test_retry_after_as_an_http_date_is_honoured_and_every_wait_is_bounded():
    now = time.time()
    in_two = email.utils.formatdate(now + 2, usegmt=True)
    assert 1 <= retry_after_s(in_two, now=now) <= 2  # HTTP dates have whole seconds
    assert retry_after_s(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0
    assert retry_after_s("0.5") == 0.5 and retry_after_s("soon") is None and retry_after_s(None) is None

    seen: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(503, headers={"retry-after": email.utils.formatdate(time.time() + 2, usegmt=True)})
        if len(seen) == 2:  # an hour: more than the client ever waits
            return httpx.Response(503, headers={"retry-after": "3600"})
        return httpx.Response(200, json=ANSWER)

    with client(handle, max_wait=1.5) as bears:
        bears.identify(b"photo")
    assert len(seen) == 3
    assert 0.9 <= seen[1] - seen[0] <= 1.6 and 1.4 <= seen[2] - seen[1] < 2.5, seen


def test_the_async_client_identifies_many_with_bounded_concurrency():
    state = {"now": 0, "most": 0}

    async def handle(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            await asyncio.sleep(0.02)
        finally:
            state["now"] -= 1
        body = request.read()
        if b"broken" in body:
            return httpx.Response(400, json={"error": "not a readable image", "code": "bad_image"})
        return httpx.Response(200, json={**ANSWER, "image": {"width": len(body), "height": 1}})

    photos = [f"photo {i}".encode() for i in range(10)] + [b"broken"]

    async def run(concurrency: int) -> list:
        async with AsyncBearIDClient("http://bearid.test", transport=httpx.MockTransport(handle)) as bears:
            return [pair async for pair in bears.identify_many(iter(photos), concurrency=concurrency)]

    results = asyncio.run(run(3))
    assert sorted(p for p, _ in results) == sorted(photos) and state["most"] == 3
    errors = {p: r for p, r in results if isinstance(r, BearIDError)}
    assert list(errors) == [b"broken"] and isinstance(errors[b"broken"], RequestRefused)
    assert all(isinstance(r, Identified) for p, r in results if p != b"broken")

    async def stop_early() -> int:
        async with AsyncBearIDClient("http://bearid.test", transport=httpx.MockTransport(handle)) as bears:
            async for _ in bears.identify_many(photos, concurrency=2):
                break
            await asyncio.sleep(0.1)
        return state["now"]

    assert asyncio.run(stop_early()) == 0  # nothing left running
    with pytest.raises(BearIDError, match="at least 1"):
        asyncio.run(run(0))
    with client(lambda r: httpx.Response(200, json=ANSWER)) as bears, pytest.raises(BearIDError, match="at least 1"):
        list(bears.identify_many([b"a"], concurrency=0))


# -- bearid score stops at once --------------------------------------------------------------
STORE = "/srv/store"


class _Service(BaseHTTPRequestHandler):
    """A BearID service with no model: GET /model says why, everything else is a 503."""

    paths: list[str] = []

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        if self.path == "/model":
            self._send(
                200, {"loaded": False, "error": "no champion in the model store at /srv/store (run bearid promote)"}
            )
        else:
            self._send(503, {"error": "no model", "code": "no_model"})

    def do_POST(self) -> None:
        type(self).paths.append(self.path)
        self._send(503, {"error": "no champion (run bearid promote)", "code": "no_model"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def modelless_service():
    _Service.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Service.paths
    server.shutdown()
    server.server_close()


def _photos(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (16, 16), (40 * i, 90, 60)).save(folder / f"p{i}.jpg")
    return folder


def test_score_against_a_service_with_no_model_stops_at_once_in_the_services_words(modelless_service, tmp_path):
    from bearid.score import score

    url, paths = modelless_service
    photos = _photos(tmp_path / "photos")
    start = time.monotonic()
    with BearIDClient(url) as bears, pytest.raises(BearIDError, match=r"run bearid promote") as info:
        score(photos, bears, tmp_path / "results.jsonl")
    assert time.monotonic() - start < 2 and paths == ["/model"] and url in str(info.value)
    assert not (tmp_path / "results.jsonl").exists()

    done = bearid("score", photos, "--url", url, "--out", tmp_path / "cli.jsonl")
    refused(done, "serves no model yet", "run bearid promote")
    assert "/identify" not in paths


def test_score_reads_truth_first_and_refuses_a_bad_url_at_once(modelless_service, tmp_path):
    url, paths = modelless_service
    photos = _photos(tmp_path / "photos")
    bad = tmp_path / "truth.xml"
    bad.write_text("<dataset><images><image file='a.jpg'>")
    refused(bearid("score", photos, "--url", url, "--truth", bad), "truth.xml")
    assert paths == []  # not even GET /model: nothing was sent
    refused(bearid("score", photos, "--url", url, "--truth", tmp_path / "nope.xml"), "nope.xml")
    start = time.monotonic()
    refused(bearid("score", photos, "--url", "notaurl"), "notaurl", "not a service URL")
    assert time.monotonic() - start < 10  # the interpreter's start; no attempts, no backoff


# -- no tracebacks, no silent acceptance --------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["score", ".", "--url", "http://127.0.0.1:9", "--concurrency", "0"],
        ["score", ".", "--url", "http://127.0.0.1:9", "--concurrency", "-3"],
        ["serve", "--port", "0"],
        ["serve", "--port", "70000"],
        ["serve", "--workers", "0"],
        ["bento", "--workers", "-1"],
    ],
)
def test_counts_and_ports_out_of_range_are_usage_errors(args):
    from typer.testing import CliRunner

    from bearid.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{args[-2]}'" in result.output and " than or equal to " in result.output, result.output


def _splits(folder: Path) -> Path:
    from bearid.metadata import Dataset, write_faces

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        write_faces(Dataset([], name=name), folder / f"{name}.xml")
    return folder


def test_train_checks_its_inputs_then_the_tracking_uri_before_anything_else(tmp_path):
    results = tmp_path / "results"
    start = time.monotonic()
    refused(bearid("train", "--data", tmp_path / "nope", "--results", results, "--mlflow", "bogus://x"), "--data")
    bad_sweep = tmp_path / "pipeline.yaml"
    bad_sweep.write_text("nonsense: 1\n")
    refused(bearid("train", bad_sweep, "--data", tmp_path / "nope", "--mlflow", "bogus://x"), "pipeline.yaml")
    splits = _splits(tmp_path / "splits")
    refused(bearid("train", "--data", splits, "--results", results, "--mlflow", "bogus://x"), "bogus", "scheme")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = bearid("train", "--data", splits, "--results", results, "--mlflow", f"http://127.0.0.1:{port}")
    refused(done, f"127.0.0.1:{port}", "no MLflow server answers")
    assert time.monotonic() - start < 60 and not results.exists()  # nothing trained, nothing written


def test_a_tracking_server_that_never_answers_is_given_up_in_seconds():
    from bearid.training.tracking import check_uri

    with socket.socket() as s:  # listens (the kernel accepts) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        start = time.monotonic()
        with pytest.raises(BearIDError, match="within 0.5 s"):
            check_uri(f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.5)
        assert time.monotonic() - start < 3
    assert check_uri("file:./mlruns") == "file:./mlruns"


def test_restore_of_a_batch_or_reason_there_is_not_is_an_error_naming_those_there_are(tmp_path):
    from bearid.data import quarantine

    root = tmp_path / "bears"
    photo = root / "brooks_falls" / "hartley_201908" / "bf_001" / "a.jpg"
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(photo)
    with pytest.raises(BearIDError, match="nothing was ever quarantined"):
        quarantine.restore(root, "NOPE")
    moved = quarantine.MoveReport(batch="20261201T120000.000001")
    rel = photo.relative_to(root).as_posix()
    quarantine.move_logged(root, rel, f"_quarantine/corrupt/{rel}", moved, "corrupt")
    with pytest.raises(BearIDError, match=r"--batch NOPE: .*the batches there: 20261201T120000\.000001"):
        quarantine.restore(root, "NOPE")
    with pytest.raises(BearIDError, match=r"--reason near_dup: .*the reasons there: corrupt"):
        quarantine.restore(root, reason="near_dup")
    assert not photo.exists()  # nothing was restored by the mistakes
    refused(bearid("data", "restore", root, "--batch", "NOPE"), "--batch NOPE", "20261201T120000.000001")
    assert len(quarantine.restore(root, moved.batch).moved) == 1 and photo.exists()


def test_split_says_which_split_came_out_empty_and_why(tmp_path):
    root = tmp_path / "bears"
    for b, bear in enumerate(("bf_001", "bf_002")):
        folder = root / "brooks_falls" / "hartley_201908" / bear
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 24), (80 * b + 20 * i, 10 * i, 200 - 30 * i)).save(folder / f"{i}.jpg")
    from bearid.data.split import SplitConfig, split

    report = split(root, tmp_path / "splits", SplitConfig())
    assert report.counts()["test"]["photos"] == 0
    assert report.warnings == [report.warnings[0]] and report.warnings[0].startswith("the test split is empty:")
    assert "6 photos of 2 bear(s)" in report.warnings[0]
    assert json.loads((tmp_path / "splits" / "split.json").read_text())["warnings"] == report.warnings
    done = bearid("data", "split", root, "--out", tmp_path / "cli")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: the test split is empty:"), done.stderr
    # Asked for: no test share, no warning.
    assert split(root, tmp_path / "s2", SplitConfig(ratios=(0.7, 0.3, 0.0))).warnings == []


# -- the upload guard and the refusal counter ---------------------------------------------------
def _multipart(path: str, files: list[tuple[str, tuple[str, bytes]]], content_type: str | None = None) -> dict:
    request = httpx.Request("POST", f"http://bearid.test{path}", files=files)
    body = request.read()
    headers = {"content-type": content_type or request.headers["content-type"], "content-length": str(len(body))}
    return {
        "scope": {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        },
        "body": body,
    }


def _through_guard(request: dict, metrics=None) -> tuple[int | None, dict | None, bytes | None]:
    """(status, JSON body) the guard answered with (None: it passed the request on), and the
    body the app read."""
    from bearid.serving.uploads import GuardUploads

    got: dict = {}

    async def app(scope, receive, send) -> None:
        got["body"] = (await receive())["body"]

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": request["body"], "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(GuardUploads(app, max_bytes=1 << 20, metrics=metrics)(request["scope"], receive, send))
    if not sent:
        return None, None, got.get("body")
    return sent[0]["status"], json.loads(sent[1]["body"]), got.get("body")


def _count(metrics, version: str, code: str) -> float:
    return sum(
        sample.value
        for family in metrics.refused.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels == {"model_version": version, "code": code}
    )


def test_two_photos_to_identify_are_refused_and_one_is_passed_on():
    from bearid.serving.http import Metrics

    metrics = Metrics()
    two = _multipart("/identify", [("photo", ("a.jpg", b"aaa")), ("photo", ("b.jpg", b"bbb"))])
    status, body, seen = _through_guard(two, metrics)
    assert status == 400 and body["code"] == "many_photos" and seen is None
    assert "2 photos" in body["error"] and "/identify_batch" in body["error"] and "'photos'" in body["error"]
    one = _multipart("/identify", [("photo", ("a.jpg", b"aaa"))])
    assert _through_guard(one, metrics) == (None, None, one["body"])
    batch = _multipart("/identify_batch", [("photos", ("a.jpg", b"aaa")), ("photos", ("b.jpg", b"bbb"))])
    assert _through_guard(batch, metrics)[0] is None
    assert _count(metrics, "none", "many_photos") == 1


def test_every_refusal_is_counted_with_the_model_version_the_guards_too(tmp_path):
    from bearid.serving.http import NO_MODEL, Champion, Metrics, identify

    metrics = Metrics()
    not_multipart = _multipart("/identify", [("photo", ("a.jpg", b"aaa"))], content_type="application/json")
    assert _through_guard(not_multipart, metrics)[0] == 415
    assert _count(metrics, NO_MODEL, "not_multipart") == 1
    metrics.serving = lambda: "92b03156e5c4"  # what a Champion with a model says
    assert _through_guard(_multipart("/identify", [("image", ("a.jpg", b"a"))]), metrics)[0] == 400
    assert _count(metrics, "92b03156e5c4", "wrong_field") == 1
    assert _through_guard(not_multipart)[0] == 415  # no metrics given: this process's, the last made
    assert _count(metrics, "92b03156e5c4", "not_multipart") == 1 and Metrics.active is metrics
    # The service's own refusals: no model loaded (a Champion sets where the version comes from).
    champion = Champion(bundle_dir=tmp_path / "no-bundle", metrics=metrics)
    assert champion.pipeline is None and metrics.serving() is None
    upload = tmp_path / "upload"
    upload.write_bytes(b"x")
    [answer] = identify(champion, [upload], metrics, max_bytes=100)
    assert answer.status == 503 and _count(metrics, NO_MODEL, "no_model") == 1
    for family in metrics.refused.collect():
        assert all("model_version" in s.labels for s in family.samples)


# -- the API document says what is true ------------------------------------------------------
def test_the_example_answer_is_a_real_answers_shape():
    answer = Identified.model_validate(EXAMPLE)
    assert answer.model_dump(mode="json", exclude_unset=True) == EXAMPLE and not answer.model_extra
    assert re.fullmatch(r"[0-9a-f]{12}", answer.model.version)  # a bundle's version
    for face in answer.faces:
        assert set(face.landmarks) == {"leye", "reye", "nose", "lear", "rear"}
        # Minus the relative Mahalanobis distance: above zero for a face the model knows.
        assert face.known and face.familiarity > 0 and face.bear_id == face.candidates[0].bear_id
        assert len(face.candidates) == 5 and face.confidence == face.candidates[0].score


def test_the_openapi_document_describes_bearid_and_its_answers_truly():
    pytest.importorskip("bentoml")
    import jsonschema

    from bearid.service.service import BearID
    from bearid.serving.apidocs import complete_openapi

    raw = json.loads(json.dumps(BearID.openapi_spec.asdict()))  # BentoML's /docs.json, as CompleteDocs reads it
    doc = json.loads(json.dumps(complete_openapi(raw, version="9.9.9")))
    info = doc["info"]
    assert info["version"] == "9.9.9" and info["description"].startswith("BearID tells individual brown bears apart")
    assert "BentoML" not in info["description"] and "docs/serving.md" in info["description"]
    assert "BentoML" not in json.dumps(info["contact"])
    text = json.dumps(doc)
    assert "IODescriptor" not in text
    schemas = doc["components"]["schemas"]
    assert {"Identified", "Batch", "Face", "Refused"} <= set(schemas)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, ref
    ok = doc["paths"]["/identify"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["title"] == "Identified" and ok["schema"]["additionalProperties"] is not False
    assert schemas["Face"]["additionalProperties"] is not False  # open to fields a later release adds
    form = doc["paths"]["/identify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["additionalProperties"] is False  # requests stay strict: the guard refuses other fields
    readyz = doc["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(readyz)
    for status in ("400", "413", "415", "503"):
        assert doc["paths"]["/identify"]["post"]["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Refused"
        }
    # The example validates against the document's own schema of the answer.
    resolver_doc = {**ok["schema"], "components": doc["components"]}
    jsonschema.validate(ok["example"], resolver_doc)
    assert ok["example"] == EXAMPLE
    newer = {**EXAMPLE, "request_id": "r-1", "faces": [{**EXAMPLE["faces"][0], "pose": {}}]}
    jsonschema.validate(newer, resolver_doc)  # a newer answer is one the document allows


def test_the_docs_give_the_clients_real_defaults():
    import inspect

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    default = inspect.signature(BearIDClient.identify_many).parameters["concurrency"].default
    assert f"identify_many(paths, concurrency={default})" in doc
    assert inspect.signature(AsyncBearIDClient.identify_many).parameters["concurrency"].default == default
