"""The Python client of the BearID service (base install only: httpx and pydantic).

    from bearid.client import BearIDClient
    with BearIDClient("http://localhost:3000", token="...") as bears:
        answer = bears.identify("photo.jpg")          # a bearid.serving.schema.Identified
        for face in answer.faces:
            print(face.bear_id, face.box.left)
        for path, result in bears.identify_many(paths, concurrency=8):
            ...

    async with AsyncBearIDClient(url) as bears:        # the same, on httpx.AsyncClient
        answer = await bears.identify("photo.jpg")
        async for path, result in bears.identify_many(paths, concurrency=8):
            ...

Answers are the service's own models (`bearid.serving.schema`); fields a newer service adds
are kept (`answer.model_extra`), not refused. Only what can pass is retried, with exponential
backoff and honouring Retry-After (seconds or an HTTP date, at most `max_wait` seconds):
connection errors, timeouts, 429, 502, 503 and 504. Anything else fails at once: another
4xx or 5xx as `RequestRefused` with the server's message and code; a URL that is not http(s),
an answer that is not JSON or not the schema's as `BearIDError` naming the URL and status.
Behind a gateway, `token` is sent as a bearer token and `headers` with every request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import io
import math
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bearid.errors import BearIDError
from bearid.serving.schema import Batch, Identified, ModelInfo

RETRY_STATUS = (429, 502, 503, 504)
# Transport failures that may pass on a later attempt (the server restarting, a dropped
# connection, a timeout); a URL with no or another protocol, or a proxy refusing, never will.
TRANSIENT = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
MAX_WAIT_S = 30.0  # the longest wait between attempts, whatever Retry-After asks
_NOTHING = object()

Answer = TypeVar("Answer", bound=BaseModel)


class RequestRefused(BearIDError):
    """The service answered with an error that retrying will not fix."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.code = status, code


class ServiceUnavailable(BearIDError):
    """The service stayed busy or unreachable through every retry."""


def _payload(photo) -> tuple[str, bytes]:
    if isinstance(photo, (bytes, bytearray)):
        return "photo", bytes(photo)
    if isinstance(photo, (str, Path)):
        path = Path(photo)
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise BearIDError(f"{path}: cannot read the photo ({exc.strerror})") from None
    if hasattr(photo, "save"):  # a PIL image: sent losslessly
        buf = io.BytesIO()
        photo.save(buf, format="PNG")
        return "photo.png", buf.getvalue()
    raise BearIDError(f"cannot send a {type(photo).__name__} as a photo (give a path, bytes or a PIL image)")


def _base_url(url: str) -> str:
    """`url` without its trailing slash, if it can name a service (http or https, a host)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise BearIDError(f"{url}: not a service URL ({exc}); give one like http://127.0.0.1:3000") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BearIDError(f"{url}: not a service URL; give one like http://127.0.0.1:3000")
    return url.rstrip("/")


def _http_options(url: str, timeout: float, transport, token: str | None, headers: dict[str, str] | None) -> dict:
    """What both clients give httpx: the base URL, the gateway's token and headers, the pool."""
    return dict(
        base_url=url,
        timeout=timeout,
        transport=transport,
        headers={**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for, in either form (delay-seconds or an HTTP date);
    None where there is none or it cannot be read."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _message(response: httpx.Response) -> tuple[str, str | None]:
    """The service's error message and code (`Refused`), or the start of whatever it sent."""
    try:
        body = response.json()
        body = body[0] if isinstance(body, list) and body else body
        return str(body.get("error", response.text[:500])), body.get("code")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase, None


def _where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url}: HTTP {response.status_code}"


def _answer(model: type[Answer], response: httpx.Response) -> Answer:
    """A good answer as `model`; one that is not JSON or not the schema's is a BearIDError."""
    try:
        body = response.json()
    except ValueError:
        start = response.text[:80].strip() or "an empty body"
        raise BearIDError(f"{_where(response)}, but the answer is not JSON: {start!r}") from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        raise BearIDError(
            f"{_where(response)}, but the answer is not a {model.__name__} ({where}: {first['msg']}; "
            f"{exc.error_count()} problem(s)): is this a BearID service of this release?"
        ) from None


class _Retry:
    """One request's retry policy: what to do with each answer, and how long to wait."""

    def __init__(self, url: str, path: str, retries: int, backoff: float, max_wait: float):
        self.url, self.path, self.retries, self.delay, self.max_wait = url, path, retries, backoff, max_wait
        self.problem, self.retry_after = "", None

    def outcome(self, response: httpx.Response | None, exc: httpx.TransportError | None) -> httpx.Response | None:
        """A good answer; None to retry; raised at once what can never pass."""
        if exc is not None:
            if not isinstance(exc, TRANSIENT):  # no or another protocol in the URL, a proxy's refusal
                raise BearIDError(f"{self.url}{self.path}: {type(exc).__name__}: {exc}") from None
            self.problem, self.retry_after = f"{type(exc).__name__}: {exc}", None
            return None
        assert response is not None
        if response.status_code < 400:
            return response
        message, code = _message(response)
        if response.status_code not in RETRY_STATUS:
            raise RequestRefused(response.status_code, message, code)
        self.problem = f"HTTP {response.status_code}" + (f": {message}" if message else "")
        self.retry_after = retry_after_s(response.headers.get("retry-after"))
        return None

    def wait_s(self) -> float:
        if self.retry_after is not None:
            wait = self.retry_after
        else:
            wait = self.delay * (1 + random.random() * 0.25)
            self.delay = min(self.delay * 2, self.max_wait)
        return min(wait, self.max_wait)

    def gave_up(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"{self.url}{self.path}: {self.problem} (after {self.retries + 1} attempts)")


def _check_concurrency(concurrency: int) -> int:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise BearIDError(f"concurrency {concurrency!r}: give at least 1 request in flight")
    return concurrency


class BearIDClient:
    """The service's client on httpx.Client: one connection pool, the retries above, typed answers."""

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        max_wait: float = MAX_WAIT_S,
    ):
        self.url = _base_url(url)
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.http = httpx.Client(**_http_options(self.url, timeout, transport, token, headers))

    def __enter__(self) -> BearIDClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, model: type[Answer], method: str, path: str, **kwargs) -> Answer:
        retry = _Retry(self.url, path, self.retries, self.backoff, self.max_wait)
        for attempt in range(self.retries + 1):
            try:
                response = retry.outcome(self.http.request(method, path, **kwargs), None)
            except httpx.TransportError as exc:
                response = retry.outcome(None, exc)
            if response is not None:
                return _answer(model, response)
            if attempt < self.retries:
                time.sleep(retry.wait_s())
        raise retry.gave_up()

    def identify(self, photo) -> Identified:
        """Faces, landmarks and bear IDs of one photo (a path, bytes or a PIL image)."""
        name, data = _payload(photo)
        return self._request(Identified, "POST", "/identify", files={"photo": (name, data)})

    def identify_batch(self, photos: Sequence) -> Batch:
        """Several photos in one request (their faces share one embedding call); one item per
        photo, in order, each an answer or that photo's error (`item.refused`)."""
        files = [("photos", _payload(p)) for p in photos]
        return self._request(Batch, "POST", "/identify_batch", files=files)

    def identify_many(
        self, photos: Iterable, concurrency: int = 4
    ) -> Iterator[tuple[object, Identified | BearIDError]]:
        """(photo, answer or error) for every photo, as they complete (not in order), with
        at most `concurrency` requests in flight."""
        _check_concurrency(concurrency)
        pending: dict[Future, object] = {}
        items = iter(photos)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while True:
                while len(pending) < concurrency and (photo := next(items, _NOTHING)) is not _NOTHING:
                    pending[pool.submit(self.identify, photo)] = photo
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    photo = pending.pop(future)
                    exc = future.exception()
                    if exc is not None and not isinstance(exc, BearIDError):
                        exc = BearIDError(f"{type(exc).__name__}: {exc}")
                    yield photo, exc if exc is not None else future.result()

    def model(self) -> ModelInfo:
        """The serving bundle's manifest summary (GET /model)."""
        return self._request(ModelInfo, "GET", "/model")

    def ready(self) -> bool:
        """Whether the service has a model loaded and takes photos (GET /readyz), asked once."""
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False


class AsyncBearIDClient:
    """`BearIDClient` on httpx.AsyncClient: the same answers, errors and retries."""

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        max_wait: float = MAX_WAIT_S,
    ):
        self.url = _base_url(url)
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.http = httpx.AsyncClient(**_http_options(self.url, timeout, transport, token, headers))

    async def __aenter__(self) -> AsyncBearIDClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, model: type[Answer], method: str, path: str, **kwargs) -> Answer:
        retry = _Retry(self.url, path, self.retries, self.backoff, self.max_wait)
        for attempt in range(self.retries + 1):
            try:
                response = retry.outcome(await self.http.request(method, path, **kwargs), None)
            except httpx.TransportError as exc:
                response = retry.outcome(None, exc)
            if response is not None:
                return _answer(model, response)
            if attempt < self.retries:
                await asyncio.sleep(retry.wait_s())
        raise retry.gave_up()

    async def identify(self, photo) -> Identified:
        name, data = _payload(photo)
        return await self._request(Identified, "POST", "/identify", files={"photo": (name, data)})

    async def identify_batch(self, photos: Sequence) -> Batch:
        files = [("photos", _payload(p)) for p in photos]
        return await self._request(Batch, "POST", "/identify_batch", files=files)

    async def identify_many(
        self, photos: Iterable, concurrency: int = 4
    ) -> AsyncIterator[tuple[object, Identified | BearIDError]]:
        """(photo, answer or error) for every photo, as they complete (not in order), with at
        most `concurrency` requests in flight (an asyncio.Semaphore). Up to as many photos
        again are taken from `photos` ahead, waiting on the semaphore, so the next request
        starts as one ends even while the caller is busy with a result.

            async for photo, result in bears.identify_many(paths, concurrency=8): ...
        """
        _check_concurrency(concurrency)
        gate = asyncio.Semaphore(concurrency)

        async def one(photo) -> Identified | BearIDError:
            async with gate:
                try:
                    return await self.identify(photo)
                except BearIDError as exc:
                    return exc
                except Exception as exc:  # one photo's failure is its result
                    return BearIDError(f"{type(exc).__name__}: {exc}")

        pending: dict[asyncio.Task, object] = {}
        items = iter(photos)
        try:
            while True:
                while len(pending) < 2 * concurrency and (photo := next(items, _NOTHING)) is not _NOTHING:
                    pending[asyncio.ensure_future(one(photo))] = photo
                if not pending:
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield pending.pop(task), task.result()
        finally:  # the caller stopped early: no request is left running
            for task in pending:
                task.cancel()

    async def model(self) -> ModelInfo:
        return await self._request(ModelInfo, "GET", "/model")

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False
