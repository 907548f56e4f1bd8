"""The labelling web app: the page, the photos (upright, as the XML's coordinates are) and a
small JSON API over the store and the queues. Starlette, served by uvicorn."""

from __future__ import annotations

import inspect
import io
import threading
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bearid.data.layout import is_bear_id
from bearid.errors import BearIDError
from bearid.imageio import displayed_size, load_photo
from bearid.label.queues import QUEUES, Leases, QueueContext, check_queue, pick
from bearid.label.store import Conflict, LabelStore, check_volunteer
from bearid.metadata import LANDMARKS

STATIC = Path(__file__).parent / "static"


class Labeler:
    """What the routes share: the store, the queue settings, the leases, a few decoded photos."""

    def __init__(
        self, store: LabelStore, ctx: QueueContext | None = None, leases: Leases | None = None, photos_kept: int = 8
    ):
        self.store, self.ctx, self.leases = store, ctx or QueueContext(), leases or Leases()
        self._photos: OrderedDict[int, bytes] = OrderedDict()
        self._photos_lock = threading.Lock()
        self.photos_kept = photos_kept

    def reason(self, queue: str, i: int) -> str | None:
        return QUEUES[queue][1](self.store.dataset.images[i], self.store.path_of(i), self.ctx)

    def members(self, queue: str) -> list[int]:
        return [i for i in range(len(self.store)) if self.reason(queue, i) is not None]

    def todo(self, queue: str, members: list[int] | None = None) -> list[int]:
        done = self.store.reviewed.get(queue, set())
        return [i for i in (self.members(queue) if members is None else members) if i not in done]

    def info(self) -> dict:
        queues = []
        for name, (desc, _) in QUEUES.items():
            members = self.members(name)
            queues.append(
                {"name": name, "description": desc, "todo": len(self.todo(name, members)), "total": len(members)}
            )
        return {
            "xml": str(self.store.xml),
            "photos": len(self.store),
            "queues": queues,
            "ids": self.store.dataset.labels(),
            "landmarks": list(LANDMARKS),
            "recovered": self.store.opened.recovered,
        }

    def next(self, queue: str, volunteer: str, after: int | None, step: int) -> int | None:
        """The photo `volunteer` should see next in `queue`; moving forward from `after`
        records it as reviewed there."""
        if after is not None and step > 0:
            self.store.review(after, queue, volunteer)
        with self.store.lock:
            found = pick(self.todo(queue), after, step, lambda i: self.leases.holder(i) in (None, volunteer))
            if found is not None:
                self.leases.take(found, volunteer)
        return found

    def image(self, i: int, volunteer: str | None) -> dict:
        store = self.store
        entry, path = store.dataset.images[i], store.path_of(i)
        with store.lock:
            holder = self.leases.holder(i)
            if volunteer and holder in (None, volunteer):
                self.leases.take(i, volunteer)
                holder = volunteer
        width, height = entry.width, entry.height
        if not (width and height):
            try:
                width, height = displayed_size(path)
            except (OSError, BearIDError):
                width = height = None
        edit = store.last_edit.get(i)
        last = {"volunteer": edit["volunteer"], "time": edit["time"]} if edit else None
        return {
            "index": i,
            "file": entry.file,
            "name": path.name,
            "width": width,
            "height": height,
            "version": store.versions[i],
            "boxes": store.boxes(i),
            "holder": holder,
            "last_change": last,
            "suggested_label": path.parent.name if is_bear_id(path.parent.name) else None,
            "reasons": {q: r for q in QUEUES if q != "all" and (r := self.reason(q, i))},
        }

    def photo(self, i: int) -> bytes:
        with self._photos_lock:
            if i in self._photos:
                self._photos.move_to_end(i)
                return self._photos[i]
        buf = io.BytesIO()
        load_photo(self.store.path_of(i)).image.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        with self._photos_lock:
            self._photos[i] = data
            while len(self._photos) > self.photos_kept:
                self._photos.popitem(last=False)
        return data


def _error(message: str, status: int, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(labeler: Labeler) -> Starlette:
    def index_of(request: Request) -> int:
        i = request.path_params["i"]
        if not 0 <= i < len(labeler.store):
            raise IndexError(i)
        return i

    def guarded(handler):
        """Every route's errors as JSON: 409 conflict, 404 no such photo, 400 bad input.
        Plain handlers run in the thread pool (they read and write files)."""

        async def run(request: Request):
            try:
                if inspect.iscoroutinefunction(handler):
                    return await handler(request)
                return await run_in_threadpool(handler, request)
            except Conflict as exc:
                return _error(str(exc), 409, version=exc.version)
            except IndexError:
                return _error(f"no photo {request.path_params.get('i')} (there are {len(labeler.store)})", 404)
            except BearIDError as exc:
                return _error(str(exc), 400)

        return run

    def home(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def info(request: Request) -> Response:
        return JSONResponse(labeler.info())

    def next_photo(request: Request) -> Response:
        q = request.query_params
        queue, volunteer = check_queue(q.get("queue", "all")), check_volunteer(q.get("volunteer", ""))
        after = int(q["after"]) if q.get("after", "").lstrip("-").isdigit() else None
        step = -1 if q.get("step") == "-1" else 1
        found = labeler.next(
            queue, volunteer, after if after is None or 0 <= after < len(labeler.store) else None, step
        )
        return JSONResponse({"index": found, "todo": len(labeler.todo(queue))})

    def image(request: Request) -> Response:
        volunteer = request.query_params.get("volunteer")
        return JSONResponse(labeler.image(index_of(request), check_volunteer(volunteer) if volunteer else None))

    def photo(request: Request) -> Response:
        try:
            data = labeler.photo(index_of(request))
        except OSError as exc:
            return _error(f"photo {request.path_params['i']} cannot be read: {exc}", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def save(request: Request) -> Response:
        try:
            body = await request.json()
            boxes, version, volunteer = body["boxes"], int(body["version"]), body["volunteer"]
            if not isinstance(boxes, list):
                raise TypeError("boxes must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            return _error(f"expected JSON {{boxes: [...], version: N, volunteer: NAME}} ({exc})", 400)
        i = index_of(request)
        new = await run_in_threadpool(
            labeler.store.update, i, boxes, version, volunteer
        )  # file work: off the event loop
        return JSONResponse({"version": new, "boxes": labeler.store.boxes(i)})

    def history(request: Request) -> Response:
        raw = request.query_params.get("image")
        i = int(raw) if raw and raw.isdigit() and int(raw) < len(labeler.store) else None
        return JSONResponse(labeler.store.history(i)[-200:])

    routes = [
        Route("/", home),
        Route("/api/info", guarded(info)),
        Route("/api/next", guarded(next_photo)),
        Route("/api/images/{i:int}", guarded(image), methods=["GET"]),
        Route("/api/images/{i:int}", guarded(save), methods=["PUT"]),
        Route("/api/images/{i:int}/photo", guarded(photo)),
        Route("/api/history", guarded(history)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
