"""The Python client of the BearID service (base install only: httpx, no torch, no server).

    from bearid.client import BearIDClient
    with BearIDClient("http://localhost:3000") as bears:
        answer = bears.identify("photo.jpg")
        for path, result in bears.identify_many(paths, concurrency=8):
            ...

Busy or restarting servers (429, 503, connection errors, timeouts) are retried with
exponential backoff (honouring Retry-After); any other 4xx is the caller's mistake and is
raised at once as `RequestRefused` with the server's message.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import httpx

from bearid.errors import BearIDError

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


class BearIDClient:
    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    def __enter__(self) -> BearIDClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                problem = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
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
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
            if attempt == self.retries:
                break
            wait_s = (
                float(retry_after) if retry_after and retry_after.isdigit() else delay * (1 + random.random() * 0.25)
            )
            time.sleep(wait_s)
            delay = min(delay * 2, 30.0)
        raise ServiceUnavailable(f"{self.url}{path}: {problem} after {self.retries + 1} attempts")

    def identify(self, photo) -> dict:
        """Faces, landmarks and bear IDs of one photo (a path, bytes or a PIL image)."""
        name, data = _payload(photo)
        return self._request("POST", "/identify", files={"photo": (name, data)})

    def identify_many(self, photos: Iterable, concurrency: int = 4) -> Iterator[tuple[object, dict | BearIDError]]:
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

    def model(self) -> dict:
        """The serving bundle's manifest summary (GET /model)."""
        return self._request("GET", "/model")
