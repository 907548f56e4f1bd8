"""What the HTTP service does, kept out of `service/service.py` so tests can call it:
which bundle to serve and swapping it without downtime, turning uploads into answers or
4xx errors, and the service's own Prometheus metrics.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bearid import bundle as bundles
from bearid.errors import BearIDError
from bearid.imageio import TooManyPixels
from bearid.pipeline import Answer, Pipeline, ort_threads
from bearid.store import ModelStore

log = logging.getLogger("bearid.service")

MAX_UPLOAD = int(os.environ.get("BEARID_MAX_UPLOAD_MB", "40")) * 1024 * 1024


@dataclass
class Refusal:
    """A request BearID will not answer: HTTP status, a code and a message naming the problem."""

    status: int
    code: str
    message: str

    def body(self) -> dict:
        return {"error": self.message, "code": self.code}


def refusal_for(exc: BearIDError) -> Refusal:
    if isinstance(exc, TooManyPixels):
        return Refusal(413, "too_many_pixels", str(exc))
    return Refusal(400, "bad_image", str(exc))


class Metrics:
    """BearID's metrics beside BentoML's (prometheus-client; BentoML's workers share them
    through its multiprocess directory). Every series carries the model version."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.faces_per_photo = Histogram("bearid_faces_per_photo", "Bear faces found per photo", ["model_version"],
                                         buckets=(0, 1, 2, 3, 5, 8, 13, 32), registry=None)
        self.faces = Counter("bearid_faces", "Bear faces answered, by whether the bear was known", ["model_version", "known"], registry=None)
        self.stage_seconds = Histogram("bearid_stage_seconds", "Time per pipeline stage", ["model_version", "stage"],
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=None)
        self.refused = Counter("bearid_refused_requests", "Requests answered with a 4xx", ["code"], registry=None)

    def answered(self, answer: Answer) -> None:
        self.faces_per_photo.labels(answer.version).observe(len(answer.faces))
        for face in answer.faces:
            self.faces.labels(answer.version, str(face.known).lower()).inc()

    def stage(self, version: str) -> Callable[[str, float], None]:
        return lambda stage, seconds: self.stage_seconds.labels(version, stage).observe(seconds)


class Champion:
    """The pipeline a worker serves. With a fixed bundle folder it never changes; from the
    model store it follows the champion pointer: a new champion is loaded beside the old one
    and swapped in with one assignment, so requests in flight finish on the old pipeline."""

    def __init__(self, bundle_dir: Path | None = None, store: ModelStore | None = None, workers: int = 1,
                 metrics: Metrics | None = None, providers: list[str] | None = None):
        self.bundle_dir, self.store = bundle_dir, store or ModelStore()
        self.threads, self.metrics, self.providers = ort_threads(workers), metrics, providers
        self.pipeline: Pipeline | None = None
        self.error: str | None = None
        self._pointer_stamp: float | None = None
        self._lock = threading.Lock()
        self.check()

    def _load(self, folder: Path) -> Pipeline:
        b = bundles.load(folder)
        return Pipeline.from_bundle(b, self.threads, self.providers, self.metrics.stage(b.version) if self.metrics else None)

    def check(self) -> bool:
        """Load the champion if it changed; True if a new pipeline was swapped in."""
        with self._lock:
            try:
                if self.bundle_dir is not None:
                    if self.pipeline is None:
                        self.pipeline = self._load(self.bundle_dir)
                        return True
                    return False
                pointer = self.store.pointer
                stamp = pointer.stat().st_mtime_ns if pointer.exists() else None
                if stamp == self._pointer_stamp and self.pipeline is not None:
                    return False
                version = self.store.champion()
                self._pointer_stamp = stamp
                if version is None:
                    self.error = f"no champion in the model store at {self.store.home} (run bearid promote)"
                    return False
                if self.pipeline is not None and self.pipeline.version == version:
                    return False
                self.pipeline = self._load(self.store.path_of(version))  # the swap
                self.error = None
                log.info("serving bundle %s", version)
                return True
            except BearIDError as exc:  # keep serving the old champion
                self.error = str(exc)
                log.error("cannot load the champion: %s", exc)
                return False

    def watch(self, interval: float, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(interval):
                self.check()

        thread = threading.Thread(target=loop, name="bearid-champion-watch", daemon=True)
        thread.start()
        return thread


def identify(champion: Champion, uploads: list[Path], metrics: Metrics | None = None) -> list[dict | Refusal]:
    """Answer uploaded photos (temporary files) with one pipeline, whichever is champion when
    the request starts."""
    pipeline = champion.pipeline
    if pipeline is None:
        return [Refusal(503, "no_model", champion.error or "no model loaded yet") for _ in uploads]
    sources: list[bytes | Refusal] = []
    for upload in uploads:
        size = upload.stat().st_size if upload.exists() else 0
        if size == 0:
            sources.append(Refusal(400, "empty", "the uploaded photo is empty (0 bytes)"))
        elif size > MAX_UPLOAD:
            sources.append(Refusal(413, "too_large", f"the uploaded photo is {size} bytes; the limit is {MAX_UPLOAD}"))
        else:
            sources.append(upload.read_bytes())
    good = [s for s in sources if not isinstance(s, Refusal)]
    answers = iter(pipeline.identify_many(good) if good else [])
    out: list[dict | Refusal] = []
    for s in sources:
        if isinstance(s, Refusal):
            out.append(s)
            continue
        a = next(answers)
        if isinstance(a, BearIDError):
            out.append(refusal_for(a))
        else:
            if metrics:
                metrics.answered(a)
            out.append(a.as_json())
    if metrics:
        for r in out:
            if isinstance(r, Refusal):
                metrics.refused.labels(r.code).inc()
    return out


def model_summary(champion: Champion) -> dict:
    p = champion.pipeline
    if p is None:
        return {"loaded": False, "error": champion.error}
    return {"loaded": True, "version": p.version, "providers": p.providers, "threads": champion.threads,
            "source": str(champion.bundle_dir or champion.store.pointer), "ids": p.bundle.ids, **p.bundle.summary()}


def check_token(header: str | None) -> bool:
    """The admin endpoints want `Authorization: Bearer $BEARID_ADMIN_TOKEN`; with no token
    configured they are closed."""
    token = os.environ.get("BEARID_ADMIN_TOKEN")
    return bool(token) and header == f"Bearer {token}"



FIELDS = {"/identify": "photo", "/identify_batch": "photos"}  # the multipart field each API takes


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, bool]]:
    """(name, is a file upload) of each part of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return []
    fields = []
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        headers = part.split(b"\r\n\r\n", 1)[0]
        if m := re.search(rb'content-disposition:([^\r\n]*)', headers, re.IGNORECASE):
            disposition = m.group(1)
            if name := re.search(rb'\bname="([^"]*)"', disposition):
                fields.append((name.group(1).decode("utf-8", "replace"), b"filename=" in disposition.lower()))
    return fields


class GuardUploads:
    """ASGI middleware in front of the API: a body over `max_bytes` gets a 413, and a photo
    sent in the wrong way (not multipart, a misnamed or missing field) a 400 naming the field
    to use, before the framework parses anything."""

    def __init__(self, app, max_bytes: int = MAX_UPLOAD + 1024 * 1024):
        self.app, self.max_bytes = app, max_bytes

    @staticmethod
    async def _refuse(send, refusal: Refusal) -> None:
        body = json.dumps(refusal.body()).encode()
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        field = FIELDS.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if field is None:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        too_large = Refusal(413, "too_large", f"the request body is over the limit of {self.max_bytes} bytes")
        if int(headers.get("content-length") or 0) > self.max_bytes:
            return await self._refuse(send, too_large)
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return await self._refuse(send, Refusal(415, "not_multipart", f"send the photo as multipart/form-data, field '{field}'"))
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._refuse(send, too_large)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        fields = multipart_fields(body, content_type)
        names = {name for name, _ in fields}
        if field not in names or names - {field}:
            extra = sorted(names - {field})
            why = f"unexpected field(s) {', '.join(extra)}" if extra else "no photo in it"
            return await self._refuse(send, Refusal(400, "wrong_field", f"{why}: send the photo in the multipart field '{field}'"))
        if not all(is_file for _, is_file in fields):
            # A plain text value would be taken by the framework as a URL to download.
            return await self._refuse(send, Refusal(400, "not_a_file", f"'{field}' must be a file upload (BearID does not fetch URLs)"))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
