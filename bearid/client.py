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

Answers are the service's own models (`bearid.serving.schema`). Busy or restarting servers (429,
503, connection errors, timeouts) are retried with exponential backoff (honouring
Retry-After); any other 4xx is the caller's mistake and is raised at once as
`RequestRefused` with the server's message and code. Behind a gateway, `token` is sent as a
bearer token and `headers` with every request.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import httpx

from bearid.errors import BearIDError
from bearid.serving.schema import Batch, Identified, ModelInfo

RETRY_STATUS = (429, 502, 503, 504)


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


def _http_options(url: str, timeout: float, transport, token: str | None, headers: dict[str, str] | None) -> dict:
    """What both clients give httpx: the base URL, the gateway's token and headers, the pool."""
    return dict(
        base_url=url,
        timeout=timeout,
        transport=transport,
        headers={**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


class _Retry:
    """One request's retry policy: what to do with each answer, and how long to wait."""

    def __init__(self, url: str, retries: int, backoff: float):
        self.url, self.retries, self.delay = url, retries, backoff
        self.problem, self.retry_after = "", None

    def outcome(self, response: httpx.Response | None, exc: httpx.TransportError | None) -> dict | list | None:
        """The body of a good answer; None to retry; RequestRefused raised for a mistake."""
        if exc is not None:  # connection refused/reset, timeouts
            self.problem, self.retry_after = f"{type(exc).__name__}: {exc}", None
            return None
        assert response is not None
        if response.status_code < 400:
            return response.json()
        if response.status_code not in RETRY_STATUS:
            try:
                body = response.json()
                body = body[0] if isinstance(body, list) and body else body
                message, code = body.get("error", response.text), body.get("code")
            except (ValueError, AttributeError):
                message, code = response.text[:500], None
            raise RequestRefused(response.status_code, message, code)
        self.problem, self.retry_after = f"HTTP {response.status_code}", response.headers.get("retry-after")
        return None

    def wait_s(self) -> float:
        ra = self.retry_after
        wait = float(ra) if ra and ra.isdigit() else self.delay * (1 + random.random() * 0.25)
        self.delay = min(self.delay * 2, 30.0)
        return wait

    def gave_up(self, path: str) -> ServiceUnavailable:
        return ServiceUnavailable(f"{self.url}{path}: {self.problem} after {self.retries + 1} attempts")


class BearIDClient:
    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.http = httpx.Client(**_http_options(self.url, timeout, transport, token, headers))

    def __enter__(self) -> BearIDClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        retry = _Retry(self.url, self.retries, self.backoff)
        for attempt in range(self.retries + 1):
            try:
                body = retry.outcome(self.http.request(method, path, **kwargs), None)
            except httpx.TransportError as exc:
                body = retry.outcome(None, exc)
            if body is not None:
                return body  # type: ignore[return-value]
            if attempt < self.retries:
                time.sleep(retry.wait_s())
        raise retry.gave_up(path)

    def identify(self, photo) -> Identified:
        """Faces, landmarks and bear IDs of one photo (a path, bytes or a PIL image)."""
        name, data = _payload(photo)
        return Identified.model_validate(self._request("POST", "/identify", files={"photo": (name, data)}))

    def identify_batch(self, photos: Sequence) -> Batch:
        """Several photos in one request (their faces share one embedding call); one item per
        photo, in order, each an answer or that photo's error (`item.refused`)."""
        files = [("photos", _payload(p)) for p in photos]
        return Batch.model_validate(self._request("POST", "/identify_batch", files=files))

    def identify_many(
        self, photos: Iterable, concurrency: int = 4
    ) -> Iterator[tuple[object, Identified | BearIDError]]:
        """(photo, answer or error) for every photo, as they complete (not in order), with
        at most `concurrency` requests in flight."""
        pending: dict[Future, object] = {}
        items = iter(photos)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while True:
                while len(pending) < concurrency and (photo := next(items, None)) is not None:
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
        return ModelInfo.model_validate(self._request("GET", "/model"))

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
    ):
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.http = httpx.AsyncClient(**_http_options(self.url, timeout, transport, token, headers))

    async def __aenter__(self) -> AsyncBearIDClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs) -> dict:
        retry = _Retry(self.url, self.retries, self.backoff)
        for attempt in range(self.retries + 1):
            try:
                body = retry.outcome(await self.http.request(method, path, **kwargs), None)
            except httpx.TransportError as exc:
                body = retry.outcome(None, exc)
            if body is not None:
                return body  # type: ignore[return-value]
            if attempt < self.retries:
                await asyncio.sleep(retry.wait_s())
        raise retry.gave_up(path)

    async def identify(self, photo) -> Identified:
        name, data = _payload(photo)
        return Identified.model_validate(await self._request("POST", "/identify", files={"photo": (name, data)}))

    async def identify_batch(self, photos: Sequence) -> Batch:
        files = [("photos", _payload(p)) for p in photos]
        return Batch.model_validate(await self._request("POST", "/identify_batch", files=files))

    async def model(self) -> ModelInfo:
        return ModelInfo.model_validate(await self._request("GET", "/model"))

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False
