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

from bearid.cards import Card, cards
from bearid.chip import ChipSpec
from bearid.data.layout import is_bear_id, location_of
from bearid.errors import BearIDError
from bearid.imageio import displayed_size, load_photo
from bearid.label import matches
from bearid.label.auth import Auth, Hosts, protect, user_of
from bearid.label.auth import routes as door
from bearid.label.crowd import Crowd
from bearid.label.identities import prefix_for
from bearid.label.queues import QUEUES, Leases, QueueContext, check_queue, pick
from bearid.label.store import Conflict, Forbidden, LabelStore, check_volunteer
from bearid.metadata import LANDMARKS, candidates
from bearid.references import face_picture, needs_match

STATIC = Path(__file__).parent / "static"


class Labeler:
    """What the routes share: the store, the queue settings, the leases, a few decoded photos."""

    def __init__(
        self,
        store: LabelStore,
        ctx: QueueContext | None = None,
        leases: Leases | None = None,
        photos_kept: int = 8,
        model: matches.ModelCandidates | None = None,
        prefixes: dict[str, str] | None = None,
        redundancy: int = 1,
        gold_every: int = 5,
    ):
        self.store, self.ctx, self.leases = store, ctx or QueueContext(), leases or Leases()
        # Several annotators per photo, blind (bearid.label.crowd); None: one person's edit is the label.
        self.crowd = Crowd(store, redundancy, self.ctx, gold_every) if redundancy > 1 else None
        self._photos: OrderedDict[object, bytes] = OrderedDict()
        self._photos_lock = threading.Lock()
        self.photos_kept = photos_kept
        self.model, self.prefixes = model, prefixes or {}
        self.chip_spec = model.pipeline.chip_spec if model else ChipSpec()
        # The bears a face may be matched to include those the model knows: its own, or those
        # `bearid score` wrote as candidates.
        store.roster |= {
            c["bear_id"]
            for _, b in store.dataset.faces()
            for c in candidates.decode(b.attrs.get(candidates.CANDIDATES))
        }
        if model:
            store.roster |= set(model.pipeline.classifier.ids)

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
            "redundancy": self.crowd.k if self.crowd else 1,
        }

    def next(self, queue: str, volunteer: str, after: int | None, step: int) -> int | None:
        """The photo `volunteer` should see next in `queue` after `after` (and a lease on it);
        it records nothing (a review is recorded by POST /api/review)."""
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
        return self._kept(("photo", i), lambda: load_photo(self.store.path_of(i)).image)

    def chip(self, i: int, face: int) -> bytes:
        """Face `face` of photo `i` as the model sees it (its chip), or its box when the landmarks
        cannot make one."""
        box = self.store.dataset.images[i].boxes[face]  # IndexError: 404
        return self._kept(
            ("chip", i, face, box.left, box.top, box.width, box.height),
            lambda: face_picture(self.store.path_of(i), box, self.chip_spec),
            keep=64,
        )

    def _kept(self, key: object, make, keep: int | None = None) -> bytes:
        with self._photos_lock:
            if key in self._photos:
                self._photos.move_to_end(key)
                return self._photos[key]
        buf = io.BytesIO()
        make().convert("RGB").save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        with self._photos_lock:
            self._photos[key] = data
            while len(self._photos) > (keep or self.photos_kept) + self.photos_kept:
                self._photos.popitem(last=False)
        return data

    def match(self, i: int) -> dict:
        """Photo `i`'s faces that wait for a name, each with the bears it could be."""
        store = self.store
        image, path = store.dataset.images[i], store.path_of(i)
        location = location_of(path)
        prefix = prefix_for(location, store.dataset, self.prefixes)
        known, waiting = store.known_ids(), []
        for n, box in enumerate(image.boxes):
            why = needs_match(box, self.ctx.confident)
            if why is None:
                continue
            found = candidates.decode(box.attrs.get(candidates.CANDIDATES))
            source = "bearid score"
            if not found and self.model:
                found, source = self.model.of(path, n, box), f"model {self.model.version}"
            waiting.append((n, box, why, [c for c in found if c["bear_id"] in known], source if found else None))
        shown = {c["bear_id"] for _, _, _, found, _ in waiting for c in found}
        found_cards = cards(None, store.dataset, k=3, parts=self.chip_spec.points, only=shown)  # one pass for the page
        faces = [
            {
                "face": n,
                "reason": why,
                "label": box.label,
                "chip": f"/api/chips/{i}/{n}",
                "source": source,
                "candidates": [self.bear(c["bear_id"], c["score"], found_cards) for c in found],
            }
            for n, box, why, found, source in waiting
        ]
        return {
            "index": i,
            "version": store.versions[i],
            "location": location,
            "prefix": prefix,
            "new_id": store.next_id(prefix),
            "faces": faces,
        }

    def bear(self, bear_id: str, score: float | None = None, cards_of: dict[str, Card] | None = None) -> dict:
        """A bear's card (the bear book's, in brief): its name if one was given here, its
        sightings and its reference chips. `cards_of`: cards already made for these bears."""
        if cards_of is None:
            cards_of = cards(None, self.store.dataset, k=3, parts=self.chip_spec.points, only={bear_id})
        card = cards_of.get(bear_id)
        refs = card.faces if card else []
        return {
            "bear_id": bear_id,
            "score": score,
            "name": self.store.bears.get(bear_id, {}).get("name"),
            "seen": card.summary() if card else None,
            "references": [{"chip": f"/api/chips/{r.image}/{r.face}", "date": r.date} for r in refs],
        }


def _error(message: str, status: int, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def json_object(request: Request, shape: str) -> dict:
    """The request's body as a JSON object, else one 400 saying what was expected."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BearIDError(f"expected a JSON object {shape}")
    return body


def text_field(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BearIDError(f"{key} must be text, got {value!r}")
    return value


def create_app(labeler: Labeler, auth: Auth | None = None, hosts: Hosts | None = None):
    """The app; with `auth`, behind accounts (bearid.label.auth), else for a trusted network
    (changes still refused from other sites); with `hosts`, only for those Host names (DNS
    rebinding refused; `bearid label` always gives them)."""

    def who(request: Request, claimed: str | None) -> str:
        """The account's name when there are accounts (what the page claims is ignored)."""
        user = user_of(request)
        return user["name"] if user else check_volunteer(claimed or "")

    def is_curator(request: Request) -> bool:
        user = user_of(request)
        return auth is None or (user is not None and user["role"] == "curator")

    def curator(request: Request, what: str) -> None:
        if not is_curator(request):
            raise Forbidden(f"only a curator may {what}")

    def sighted(request: Request, what: str) -> None:
        """With several annotators per photo, only curators see faces others drew (answers,
        consensus, gold truth) or change them directly: volunteers label blind (/api/blind)."""
        if labeler.crowd is not None and not is_curator(request):
            raise Forbidden(f"with several annotators per photo, volunteers label blind: only a curator may {what}")

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
            except Forbidden as exc:
                return _error(str(exc), 403)
            except IndexError:
                return _error(f"no photo {request.path_params.get('i')} (there are {len(labeler.store)})", 404)
            except BearIDError as exc:
                return _error(str(exc), 400)

        return run

    def home(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def info(request: Request) -> Response:
        found = labeler.info()
        if not is_curator(request):
            found["xml"] = labeler.store.xml.name  # where it lives on the server is the curators' business
        return JSONResponse(found)

    def next_photo(request: Request) -> Response:
        """The photo to see next (and a lease on it); a GET records nothing: moving on from a
        photo records its review with POST /api/review first."""
        q = request.query_params
        queue, volunteer = check_queue(q.get("queue", "all")), who(request, q.get("volunteer"))
        after = int(q["after"]) if q.get("after", "").lstrip("-").isdigit() else None
        after = after if after is None or 0 <= after < len(labeler.store) else None
        step = -1 if q.get("step") == "-1" else 1
        found = labeler.next(queue, volunteer, after, step)
        return JSONResponse({"index": found, "todo": len(labeler.todo(queue))})

    async def review(request: Request) -> Response:
        """{index, queue[, volunteer]}: the volunteer has looked at photo `index` for `queue`;
        it leaves that queue (a journal entry)."""
        body = await json_object(request, "{index: N, queue: NAME, volunteer: NAME}")
        queue = check_queue(text_field(body, "queue") or "all")
        i = body.get("index")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(labeler.store):
            return _error(f"index: a photo of this XML, 0 to {len(labeler.store) - 1}", 400)
        await run_in_threadpool(labeler.store.review, i, queue, who(request, text_field(body, "volunteer")))
        return JSONResponse({"index": i, "todo": len(labeler.todo(queue))})

    def image(request: Request) -> Response:
        sighted(request, "see a photo's faces")
        volunteer = request.query_params.get("volunteer")
        return JSONResponse(labeler.image(index_of(request), who(request, volunteer) if volunteer or auth else None))

    def photo(request: Request) -> Response:
        try:
            data = labeler.photo(index_of(request))
        except OSError as exc:
            return _error(f"photo {request.path_params['i']} cannot be read: {exc}", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def save(request: Request) -> Response:
        shape = "{boxes: [...], version: N, volunteer: NAME}"
        body = await json_object(request, shape)
        try:
            boxes, version, volunteer = body["boxes"], int(body["version"]), text_field(body, "volunteer")
            if not isinstance(boxes, list):
                raise TypeError("boxes must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            return _error(f"expected JSON {shape} ({exc})", 400)
        i = index_of(request)
        sighted(request, "change a photo's faces directly")
        new = await run_in_threadpool(
            labeler.store.edit, i, boxes, version, who(request, volunteer), is_curator(request)
        )  # file work: off the event loop
        return JSONResponse({"version": new, "boxes": labeler.store.boxes(i)})

    def chip(request: Request) -> Response:
        sighted(request, "see a face's chip")
        try:
            data = labeler.chip(index_of(request), request.path_params["face"])
        except OSError as exc:
            return _error(f"photo {request.path_params['i']} cannot be read: {exc}", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    def match(request: Request) -> Response:
        sighted(request, "review matches")
        return JSONResponse(labeler.match(index_of(request)))

    async def decide(request: Request) -> Response:
        body = await json_object(request, "{face, decision, version, volunteer[, bear_id, name]}")
        try:
            decision, version, volunteer = body["decision"], int(body["version"]), text_field(body, "volunteer")
            face = int(body["face"])
        except (ValueError, KeyError, TypeError) as exc:
            return _error(f"expected JSON {{face, decision, version, volunteer[, bear_id, name]}} ({exc})", 400)
        i = index_of(request)
        sighted(request, "decide matches")
        if not 0 <= face < len(labeler.store.dataset.images[i].boxes):
            return _error(f"photo {i} has no face {face}", 404)
        if decision == "new":
            curator(request, "name a new bear")
        page = labeler.match(i)
        shown = next((f["candidates"] for f in page["faces"] if f["face"] == face), [])
        done = await run_in_threadpool(
            labeler.store.decide,
            i,
            face,
            decision,
            version,
            who(request, volunteer),
            text_field(body, "bear_id"),
            page["prefix"],
            text_field(body, "name"),
            [{"bear_id": c["bear_id"], "score": c["score"]} for c in shown],
            labeler.model.version if labeler.model else None,
        )
        return JSONResponse({**done, "match": labeler.match(i)})

    def bear(request: Request) -> Response:
        bear_id = request.path_params["bear_id"]
        if bear_id not in labeler.store.known_ids():
            return _error(f"no bear {bear_id!r} in this XML", 404)
        return JSONResponse(labeler.bear(bear_id))

    async def merge(request: Request) -> Response:
        curator(request, "merge bears")
        body = await json_object(request, "{keep: BEAR, gone: BEAR}")
        op = await run_in_threadpool(
            labeler.store.merge,
            text_field(body, "keep") or "",
            text_field(body, "gone") or "",
            who(request, text_field(body, "volunteer")),
        )
        return JSONResponse(op)

    async def split(request: Request) -> Response:
        curator(request, "split a bear")
        body = await json_object(request, "{faces: [[photo, face], ...], prefix, name}")
        try:
            faces = [(int(i), int(n)) for i, n in body["faces"]]
        except (KeyError, TypeError, ValueError) as exc:
            return _error(f"expected JSON {{faces: [[photo, face], ...], prefix, name}} ({exc})", 400)
        if not faces or not all(0 <= i < len(labeler.store) for i, _ in faces):
            return _error("faces: give [[photo, face], ...] of this XML", 400)
        prefix = text_field(body, "prefix") or labeler.match(faces[0][0])["prefix"]  # the site's convention
        op = await run_in_threadpool(
            labeler.store.split,
            faces,
            who(request, text_field(body, "volunteer")),
            prefix,
            text_field(body, "name"),
        )
        return JSONResponse(op)

    async def undo(request: Request) -> Response:
        curator(request, "undo a merge or a split")
        body = await json_object(request, "{op: ID}")
        op = await run_in_threadpool(
            labeler.store.undo, text_field(body, "op") or "", who(request, text_field(body, "volunteer"))
        )
        return JSONResponse(op)

    def me(request: Request) -> Response:
        user = user_of(request)
        return JSONResponse(
            {
                "accounts": auth is not None,
                "name": user["name"] if user else None,
                "role": user["role"] if user else "curator",
                "csrf": request.session["csrf"] if auth is not None else None,
            }
        )

    def history(request: Request) -> Response:
        sighted(request, "read the journal")
        raw = request.query_params.get("image")
        i = int(raw) if raw and raw.isdigit() and int(raw) < len(labeler.store) else None
        return JSONResponse(labeler.store.history(i)[-200:])

    def blind_next(request: Request) -> Response:
        """The photo this annotator labels next, blind (gold photos among them, unannounced)."""
        crowd = labeler.crowd
        found = crowd.next(who(request, request.query_params.get("volunteer")))
        return JSONResponse({"index": found, "task": crowd.task(found) if found is not None else None})

    def blind_task(request: Request) -> Response:
        return JSONResponse(labeler.crowd.task(index_of(request)))

    async def blind_answer(request: Request) -> Response:
        body = await json_object(request, "{boxes: [...][, volunteer: NAME]}")
        i = index_of(request)
        done = await run_in_threadpool(
            labeler.crowd.answer, i, who(request, text_field(body, "volunteer")), body.get("boxes")
        )
        return JSONResponse(done)

    async def gold(request: Request) -> Response:
        curator(request, "mark gold photos")
        body = await json_object(request, "{index: N[, gold: true|false]}")
        i = body.get("index")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(labeler.store):
            return _error(f"index: a photo of this XML, 0 to {len(labeler.store) - 1}", 400)
        done = await run_in_threadpool(
            labeler.crowd.mark_gold, i, who(request, text_field(body, "volunteer")), body.get("gold", True) is not False
        )
        return JSONResponse(done)

    def annotators(request: Request) -> Response:
        curator(request, "see the annotators' figures")
        classes = labeler.crowd.classes()
        return JSONResponse([s.summary(classes) for s in labeler.crowd.stats().values()])

    crowd_routes = (
        [
            Route("/api/blind/next", guarded(blind_next), methods=["GET"]),
            Route("/api/blind/{i:int}", guarded(blind_task), methods=["GET"]),
            Route("/api/blind/{i:int}", guarded(blind_answer), methods=["POST"]),
            Route("/api/gold", guarded(gold), methods=["POST"]),
            Route("/api/annotators", guarded(annotators), methods=["GET"]),
        ]
        if labeler.crowd is not None
        else []
    )

    routes = [
        *crowd_routes,
        Route("/", home),
        Route("/api/info", guarded(info)),
        Route("/api/next", guarded(next_photo), methods=["GET"]),
        Route("/api/review", guarded(review), methods=["POST"]),
        Route("/api/images/{i:int}", guarded(image), methods=["GET"]),
        Route("/api/images/{i:int}", guarded(save), methods=["PUT"]),
        Route("/api/images/{i:int}/photo", guarded(photo)),
        Route("/api/chips/{i:int}/{face:int}", guarded(chip)),
        Route("/api/match/{i:int}", guarded(match), methods=["GET"]),
        Route("/api/match/{i:int}", guarded(decide), methods=["POST"]),
        Route("/api/bears/{bear_id:str}", guarded(bear)),
        Route("/api/history", guarded(history)),
        Route("/api/bears/merge", guarded(merge), methods=["POST"]),
        Route("/api/bears/split", guarded(split), methods=["POST"]),
        Route("/api/bears/undo", guarded(undo), methods=["POST"]),
        Route("/api/me", guarded(me)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *(door(auth) if auth is not None else []),
    ]
    return protect(Starlette(routes=routes), auth, hosts)
