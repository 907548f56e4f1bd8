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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bearid import serving
from bearid.settings import Settings
from bearid.uploads import GuardUploads, Refusal

WORKERS = Settings.from_env().workers  # BentoML reads the worker count when the class is declared


async def _model(request: Request) -> JSONResponse:
    return JSONResponse(serving.model_summary(bentoml.get_current_service().champion))


async def _reload(request: Request) -> JSONResponse:
    if not serving.check_token(request.headers.get("authorization")):
        return JSONResponse({"error": "admin token missing or wrong", "code": "unauthorized"}, status_code=401)
    service = bentoml.get_current_service()
    swapped = service.champion.check()
    return JSONResponse({"swapped": swapped, **serving.model_summary(service.champion)})


extra = Starlette(routes=[Route("/model", _model, methods=["GET"]), Route("/admin/reload", _reload, methods=["POST"])])


def _respond(result: dict | Refusal) -> dict | JSONResponse:
    if isinstance(result, Refusal):
        return JSONResponse(result.body(), status_code=result.status)
    return result


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
    def identify(self, photo: Path) -> dict:
        """Every bear face in one photo: box, five landmarks, bear ID (null: unknown bear)."""
        [result] = serving.identify(self.champion, [photo], self.metrics, self.settings.max_upload_bytes)
        return _respond(result)  # type: ignore[return-value]

    @bentoml.api(route="/identify_batch")
    def identify_batch(self, photos: list[Path]) -> dict:
        """Several photos in one request; their faces share one embedding call."""
        results = serving.identify(self.champion, photos, self.metrics, self.settings.max_upload_bytes)
        if all(isinstance(r, Refusal) and r.code == "no_model" for r in results):
            return _respond(results[0])  # type: ignore[return-value]
        return {"results": [r.body() | {"status": r.status} if isinstance(r, Refusal) else r for r in results]}


BearID.add_asgi_middleware(GuardUploads)
