"""BearID's HTTP service (BentoML 1.4): photos in, bear faces with IDs out.

    bentoml serve service.service:BearID      # or: bearid serve

Serves the champion of the model store (`bearid promote`), or a fixed bundle folder given
in BEARID_BUNDLE. Every worker loads the pipeline once and follows the champion pointer
(every BEARID_WATCH_SECONDS, or at once on `POST /admin/reload` with the admin token): a new
champion is swapped in between requests, so a promotion needs no restart and fails nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import bentoml
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from bearid import __version__, serving
from bearid.apidocs import CompleteDocs
from bearid.schema import Batch, BatchItem, Identified, ModelInfo, Refused, Reloaded
from bearid.settings import Settings
from bearid.uploads import GuardUploads, Refusal

WORKERS = Settings.from_env().workers  # BentoML reads the worker count when the class is declared

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
@bentoml.service(workers=WORKERS, traffic={"timeout": 60, "max_concurrency": 64}, resources={"cpu": str(WORKERS)})
class BearID:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.metrics = serving.Metrics()
        self.champion = serving.Champion(self.settings.bundle, workers=WORKERS, metrics=self.metrics)
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
        return Identified.model_validate(result)

    @bentoml.api(route="/identify_batch")
    def identify_batch(self, photos: list[Path]) -> Batch:
        """Several photos in one request; their faces share one embedding call."""
        results = serving.identify(self.champion, photos, self.metrics, self.settings.max_upload_bytes)
        if all(isinstance(r, Refusal) and r.code == "no_model" for r in results):
            return JSONResponse(results[0].body(), status_code=503)  # type: ignore[return-value,union-attr]
        items = [r.body() | {"status": r.status} if isinstance(r, Refusal) else r for r in results]
        return Batch(results=[BatchItem.model_validate(i) for i in items])


BearID.add_asgi_middleware(GuardUploads)
BearID.add_asgi_middleware(CompleteDocs)
