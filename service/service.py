"""BearID's HTTP service (BentoML 1.4): photos in, bear faces with IDs out.

    bearid serve                              # or: bentoml serve bearid.service.service:BearID
    bearid bento && bentoml containerize bearid_service:latest

What it serves, first found: the bundle folder in BEARID_BUNDLE; the champion of the model
store (`bearid promote`), followed live; else the model it declares, BEARID_MODEL
(default `bearid:latest`), which a bento built by `bearid bento` carries inside it.
Following the champion, every worker looks at the pointer every BEARID_WATCH_SECONDS (or at
once on `POST /admin/reload` with the admin token) and swaps a new champion in between
requests, so a promotion needs no restart and fails nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import anyio
import bentoml
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from bearid import __version__
from bearid.serving import http as serving
from bearid.serving.apidocs import CompleteDocs
from bearid.serving.runtime import cap_thread_pools, ort_threads
from bearid.serving.schema import Batch, BatchItem, Identified, ModelInfo, Refused, Reloaded
from bearid.serving.uploads import GuardUploads, Refusal
from bearid.settings import Settings
from bearid.video.task import VideoIdentified, VideoLimits, identify_upload

# BentoML reads workers, resources, the image and the model when the class is declared, which
# for a bento is when it is built: the bento records them, and BEARID_WORKERS in its
# environment says the same number to the workers that run.
SETTINGS = Settings.from_env()
WORKERS = SETTINGS.workers
IMAGE = (
    bentoml.images.Image(python_version="3.11", lock_python_packages=True)
    .system_packages("libgomp1")
    .python_packages(*serving.requirements(Path(__file__).with_name("requirements.txt")))
)

extra = FastAPI(title="BearID", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)


@extra.get("/model", response_model=ModelInfo)
def _model() -> dict:
    """The bundle served: version, bears, thresholds, lineage."""
    return serving.model_summary(bentoml.get_current_service().champion)


@extra.post("/admin/reload", response_model=Reloaded, responses={401: {"model": Refused}})
def _reload(authorization: str | None = Header(None)) -> dict | JSONResponse:
    """Look for a new champion now (needs `Authorization: Bearer $BEARID_ADMIN_TOKEN`)."""
    if not serving.check_token(authorization):
        return JSONResponse({"error": "admin token missing or wrong", "code": "unauthorized"}, status_code=401)
    service = bentoml.get_current_service()
    swapped = service.champion.check()
    return {"swapped": swapped, **serving.model_summary(service.champion)}


@bentoml.asgi_app(extra, path="/")
@bentoml.service(
    image=IMAGE,
    workers=WORKERS,
    resources={"cpu": str(WORKERS)},
    envs=[{"name": "BEARID_WORKERS", "value": str(WORKERS)}, {"name": "BENTOML_DO_NOT_TRACK", "value": "True"}],
    traffic={"timeout": 60, "max_concurrency": 64},
)
class BearID:
    carried = bentoml.models.BentoModel(SETTINGS.model) if serving.in_bentoml_store(SETTINGS.model) else None

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        # Worker start-up: the BLAS and OpenMP pools get the worker's ONNX Runtime threads,
        # before the bundle loads (docs/serving.md, "Threads and CPU shares").
        threads = ort_threads(WORKERS, self.settings)
        pools = cap_thread_pools(threads)
        logging.getLogger("bearid.service").info(
            "worker %d: %d ONNX Runtime thread(s); pools %s",
            os.getpid(),
            threads,
            ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in pools) or "none",
        )
        self.metrics = serving.Metrics()
        carried = type(self).carried
        self.champion = serving.Champion(
            self.settings.bundle,
            carried=Path(carried.stored.path) if carried else None,
            workers=WORKERS,
            metrics=self.metrics,
        )
        self._clips: anyio.CapacityLimiter | None = None  # made in the event loop, on the first clip
        self._stop = threading.Event()
        self.champion.watch(self.settings.watch_seconds, self._stop)

    def __is_ready__(self) -> bool:
        return self.champion.pipeline is not None

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()

    @bentoml.api(route="/identify")
    def identify(self, photo: Path) -> Identified:
        """Every bear face in one photo: box, five landmarks, bear ID (null: unknown bear)."""
        [result] = serving.identify(self.champion, [photo], self.metrics, self.settings.max_upload_bytes)
        if isinstance(result, Refusal):
            return JSONResponse(result.body(), status_code=result.status)  # type: ignore[return-value]
        return result

    @bentoml.task(route="/identify_video")
    async def identify_video(self, clip: Path) -> VideoIdentified:
        """The bears of one clip, a track each (a task: POST /identify_video/submit, then
        GET /identify_video/status and /identify_video/get with the task_id). A clip over the
        limits or not a clip is refused at submit (4xx); one that fails later is the task's
        failed status, its /get the 4xx."""
        pipeline = self.champion.pipeline
        if pipeline is None:
            return JSONResponse({"error": "no model loaded", "code": "no_model"}, status_code=503)  # type: ignore[return-value]
        limits = VideoLimits(max_bytes=self.settings.max_video_bytes)
        if self._clips is None:
            self._clips = anyio.CapacityLimiter(1)
        # Its own thread, one clip at a time a worker: the photo endpoints' thread is never held.
        result = await anyio.to_thread.run_sync(identify_upload, pipeline, clip, limits, limiter=self._clips)
        if isinstance(result, Refusal):
            return JSONResponse(result.body(), status_code=result.status)  # type: ignore[return-value]
        return result

    @bentoml.api(route="/identify_batch")
    def identify_batch(self, photos: list[Path]) -> Batch:
        """Several photos in one request; their faces share one embedding call."""
        results = serving.identify(self.champion, photos, self.metrics, self.settings.max_upload_bytes)
        if all(isinstance(r, Refusal) and r.code == "no_model" for r in results):
            return JSONResponse(results[0].body(), status_code=503)  # type: ignore[return-value,union-attr]
        return Batch(
            results=[
                BatchItem.model_validate(r.body() | {"status": r.status})
                if isinstance(r, Refusal)
                else BatchItem.model_validate(r, from_attributes=True)
                for r in results
            ]
        )


BearID.add_asgi_middleware(GuardUploads)
BearID.add_asgi_middleware(CompleteDocs)
