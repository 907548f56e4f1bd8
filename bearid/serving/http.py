"""What the HTTP service does, kept out of `service/service.py` so tests can call it:
which bundle to serve and swapping it without downtime, answering uploaded photos (or
refusing them, `bearid.serving.uploads`), and the service's own Prometheus metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from bearid.errors import BearIDError
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.serving.runtime import ort_threads
from bearid.serving.schema import Identified
from bearid.serving.store import ModelStore
from bearid.serving.uploads import Refusal, checked, refusal_for
from bearid.settings import Settings

log = logging.getLogger("bearid.service")


NO_MODEL = "none"  # the model_version label of what is refused while no model is loaded


class Metrics:
    """BearID's metrics beside BentoML's (prometheus-client; BentoML's workers share them
    through its multiprocess directory). Every series carries the model version: the one
    that answered, or for a refusal the one served when it was refused (`NO_MODEL` if none).

    Refusals are counted wherever they are made: by the service (`identify`) and by the
    upload guard in front of it (`bearid.serving.uploads.GuardUploads`: too large, not
    multipart, a wrong field), which finds this process's metrics as `Metrics.active`."""

    active: ClassVar[Metrics | None] = None  # the last made in this process: the service's

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.faces_per_photo = Histogram(
            "bearid_faces_per_photo",
            "Bear faces found per photo",
            ["model_version"],
            buckets=(0, 1, 2, 3, 5, 8, 13, 32),
            registry=None,
        )
        self.faces = Counter(
            "bearid_faces",
            "Bear faces answered, by whether the bear was known",
            ["model_version", "known"],
            registry=None,
        )
        self.stage_seconds = Histogram(
            "bearid_stage_seconds",
            "Time per pipeline stage",
            ["model_version", "stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=None,
        )
        self.refused = Counter(
            "bearid_refused_requests",
            "Requests refused (a 4xx, or a 503 while no model is loaded), by the upload guard or the service",
            ["model_version", "code"],
            registry=None,
        )
        # The version served now, for refusals made before a pipeline is chosen (the guard's);
        # the Champion given these metrics sets it.
        self.serving: Callable[[], str | None] = lambda: None
        Metrics.active = self

    def answered(self, answer: Identified) -> None:
        version = answer.model.version
        self.faces_per_photo.labels(version).observe(len(answer.faces))
        for face in answer.faces:
            self.faces.labels(version, str(face.known).lower()).inc()

    def refusal(self, code: str, version: str | None = None) -> None:
        """Count one refusal, under `version` (default: the model served now)."""
        self.refused.labels(version or self.serving() or NO_MODEL, code).inc()

    def stage(self, version: str) -> Callable[[str, float], None]:
        return lambda stage, seconds: self.stage_seconds.labels(version, stage).observe(seconds)


class Champion:
    """The pipeline a worker serves. With a fixed bundle folder it never changes; from the
    model store it follows the champion pointer: a new champion is loaded beside the old one
    and swapped in with one assignment, so requests in flight finish on the old pipeline.
    With no pointer, it serves `carried`, the model a bento carries, if there is one."""

    def __init__(
        self,
        bundle_dir: Path | None = None,
        store: ModelStore | None = None,
        carried: Path | None = None,
        workers: int = 1,
        metrics: Metrics | None = None,
        providers: list[str] | None = None,
    ):
        self.bundle_dir, self.store, self.carried = bundle_dir, store or ModelStore(), carried
        self.threads, self.metrics, self.providers = ort_threads(workers), metrics, providers
        self.pipeline: Pipeline | None = None
        if metrics is not None:  # refusals are counted under the model served when they are made
            metrics.serving = lambda: self.pipeline.version if self.pipeline is not None else None
        self.error: str | None = None
        self._pointer_stamp: float | None = None
        self._lock = threading.Lock()
        self.check()

    def _load(self, folder: Path) -> Pipeline:
        b = bundles.load(folder)
        return Pipeline.from_bundle(
            b, self.threads, self.providers, self.metrics.stage(b.version) if self.metrics else None
        )

    def check(self) -> bool:
        """Load the champion if it changed; True if a new pipeline was swapped in."""
        with self._lock:
            try:
                pointer = self.store.pointer
                fixed = self.bundle_dir or (self.carried if not pointer.exists() else None)
                if fixed is not None:
                    if self.pipeline is None:
                        self.pipeline = self._load(fixed)
                        log.info("serving bundle %s from %s", self.pipeline.version, fixed)
                        return True
                    return False
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
            except BearIDError as exc:  # keep serving the old champion; say so once, not every look
                if str(exc) != self.error:
                    log.warning(
                        "cannot load the champion, %s: %s",
                        "keeping the model loaded" if self.pipeline else "no model",
                        exc,
                    )
                self.error = str(exc)
                return False

    @property
    def source(self) -> Path:
        """Where the served bundle came from: the folder, the pointer, or the carried model."""
        if self.bundle_dir is not None:
            return self.bundle_dir
        return self.store.pointer if self.store.pointer.exists() or self.carried is None else self.carried

    def watch(self, interval: float, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(interval):
                self.check()

        thread = threading.Thread(target=loop, name="bearid-champion-watch", daemon=True)
        thread.start()
        return thread


def identify(
    champion: Champion, uploads: list[Path], metrics: Metrics | None = None, max_bytes: int | None = None
) -> list[Identified | Refusal]:
    """Answer uploaded photos (temporary files) with one pipeline, whichever is champion when
    the request starts; photos over `max_bytes` (default: BEARID_MAX_UPLOAD_MB) are refused."""
    pipeline = champion.pipeline
    if pipeline is None:
        refused = [Refusal(503, "no_model", champion.error or "no model loaded yet") for _ in uploads]
        if metrics:
            for r in refused:
                metrics.refusal(r.code, NO_MODEL)
        return refused
    sources = checked(uploads, max_bytes or Settings.from_env().max_upload_bytes)
    good = [s for s in sources if not isinstance(s, Refusal)]
    answers = iter(pipeline.identify_many(good) if good else [])
    out: list[Identified | Refusal] = []
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
            out.append(a)
    if metrics:
        for r in out:
            if isinstance(r, Refusal):
                metrics.refusal(r.code, pipeline.version)
    return out


def model_summary(champion: Champion) -> dict:
    """What `GET /model` answers (bearid.serving.schema.ModelInfo)."""
    p = champion.pipeline
    if p is None:
        return {"loaded": False, "error": champion.error}
    return summary_of(p, str(champion.source), champion.threads)


def summary_of(p: Pipeline, source: str, threads: int | None) -> dict:
    return {
        "loaded": True,
        "version": p.version,
        "providers": p.providers,
        "threads": threads,
        "source": source,
        "ids": p.bundle.ids,
        **p.bundle.summary(),
    }


def in_bentoml_store(tag: str) -> bool:
    """Whether BentoML's model store has `tag` (in a bento being served: the bento's own). The
    service declares its model only then: BentoML would ask BentoCloud for a missing one."""
    import bentoml

    try:
        bentoml.models.get(tag)
        return True
    except bentoml.exceptions.NotFound:
        return False


def requirements(path: Path) -> list[str]:
    """The packages of a requirements file (BentoML's image takes a file by relative path only,
    and the installed service has no working directory of its own)."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def check_token(header: str | None, settings: Settings | None = None) -> bool:
    """The admin endpoints want `Authorization: Bearer $BEARID_ADMIN_TOKEN`; with no token
    configured they are closed."""
    token = (settings or Settings.from_env()).admin_token
    return bool(token) and header == f"Bearer {token}"
