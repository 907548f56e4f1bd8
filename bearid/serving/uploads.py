"""Uploads to the service: what is refused before a photo reaches the pipeline, and why.

`GuardUploads` stands in front of the API (ASGI middleware): a body over the limit gets a
413, and a photo sent in the wrong way (not multipart, a misnamed or missing field, a text
value instead of a file, two photos to /identify, which answers one) a 4xx naming the field
to use, before the framework parses anything; each refusal is counted in the service's
metrics. `checked` turns the uploaded files into the photos to answer, or refusals.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bearid.errors import BearIDError
from bearid.imageio import TooManyPixels
from bearid.settings import Settings


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


def checked(uploads: list[Path], max_bytes: int) -> list[bytes | Refusal]:
    """Each uploaded photo's bytes, or why it is refused (empty, or over `max_bytes`)."""
    out: list[bytes | Refusal] = []
    for upload in uploads:
        size = upload.stat().st_size if upload.exists() else 0
        if size == 0:
            out.append(Refusal(400, "empty", "the uploaded photo is empty (0 bytes)"))
        elif size > max_bytes:
            out.append(Refusal(413, "too_large", f"the uploaded photo is {size} bytes; the limit is {max_bytes}"))
        else:
            out.append(upload.read_bytes())
    return out


FIELDS = {
    "/identify": "photo",
    "/identify_batch": "photos",
    "/identify_video": "clip",
    "/identify_video/submit": "clip",
}  # the multipart field each API takes
SINGLE = {"/identify", "/identify_video", "/identify_video/submit"}  # a second part in their field is refused
# The clip endpoints: their own byte limit (BEARID_MAX_VIDEO_MB), and the clip's header checked
# (bearid.video.task.check_clip) before a task is queued, so a refused clip is a 4xx at submit.
VIDEO = {"/identify_video", "/identify_video/submit"}


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, bool]]:
    """(name, is a file upload) of each part of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return []
    fields = []
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        headers = part.split(b"\r\n\r\n", 1)[0]
        if m := re.search(rb"content-disposition:([^\r\n]*)", headers, re.IGNORECASE):
            disposition = m.group(1)
            if name := re.search(rb'\bname="([^"]*)"', disposition):
                fields.append((name.group(1).decode("utf-8", "replace"), b"filename=" in disposition.lower()))
    return fields


def multipart_file(body: bytes, content_type: str, field: str) -> bytes | None:
    """The bytes of the first part named `field` of a multipart/form-data body (None: none)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return None
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        head, sep, data = part.partition(b"\r\n\r\n")
        if sep and (m := re.search(rb'\bname="([^"]*)"', head)) and m.group(1).decode("utf-8", "replace") == field:
            return data[:-2] if data.endswith(b"\r\n") else data
    return None


def check_clip_bytes(data: bytes, max_bytes: int) -> Refusal | None:
    """`bearid.video.task.check_clip` on an upload's bytes (written to a temporary file)."""
    import tempfile

    from bearid.video.task import VideoLimits, check_clip

    with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
        tmp.write(data)
        tmp.flush()
        return check_clip(Path(tmp.name), VideoLimits(max_bytes=max_bytes))


class GuardUploads:
    """ASGI middleware in front of the API: a body over `max_bytes` (by default the photo
    limit and 1 MiB for the multipart framing) gets a 413, and a photo sent in the wrong way
    a 4xx naming the field to use, before the framework parses anything."""

    def __init__(self, app, max_bytes: int | None = None, metrics=None):
        self.app = app
        settings = Settings.from_env()
        self.max_bytes = max_bytes or settings.max_upload_bytes + 1024 * 1024
        self.max_video_bytes = settings.max_video_bytes
        self.metrics = metrics  # a bearid.serving.http.Metrics; None: this process's, if it has them

    def _count(self, refusal: Refusal) -> None:
        metrics = self.metrics
        if metrics is None:  # the service's, if this process made any (then it imported them)
            http = sys.modules.get("bearid.serving.http")
            metrics = http.Metrics.active if http is not None else None
        if metrics is not None:
            metrics.refusal(refusal.code)

    async def _refuse(self, send, refusal: Refusal) -> None:
        self._count(refusal)
        body = json.dumps(refusal.body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        field = FIELDS.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if field is None:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        video = scope["path"] in VIDEO
        limit = self.max_video_bytes + 1024 * 1024 if video else self.max_bytes
        too_large = Refusal(413, "too_large", f"the request body is over the limit of {limit} bytes")
        if int(headers.get("content-length") or 0) > limit:
            return await self._refuse(send, too_large)
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return await self._refuse(
                send,
                Refusal(
                    415,
                    "not_multipart",
                    f"send the {'clip' if video else 'photo'} as multipart/form-data, field '{field}'",
                ),
            )
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if total > limit:
                return await self._refuse(send, too_large)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        fields = multipart_fields(body, content_type)
        names = {name for name, _ in fields}
        if field not in names or names - {field}:
            extra = sorted(names - {field})
            why = f"unexpected field(s) {', '.join(extra)}" if extra else f"no {'clip' if video else 'photo'} in it"
            return await self._refuse(
                send, Refusal(400, "wrong_field", f"{why}: send the photo in the multipart field '{field}'")
            )
        sent_photos = sum(1 for name, _ in fields if name == field)
        if video and sent_photos > 1:
            return await self._refuse(
                send, Refusal(400, "many_clips", f"{sent_photos} clips in the field '{field}'; send one a request")
            )
        if scope["path"] in SINGLE and sent_photos > 1:
            batch = next(p for p, f in FIELDS.items() if p not in SINGLE)
            return await self._refuse(
                send,
                Refusal(
                    400,
                    "many_photos",
                    f"{sent_photos} photos in the field '{field}'; {scope['path']} answers one "
                    f"(send several to {batch}, field '{FIELDS[batch]}')",
                ),
            )
        if not all(is_file for _, is_file in fields):
            # A plain text value would be taken by the framework as a URL to download.
            return await self._refuse(
                send, Refusal(400, "not_a_file", f"'{field}' must be a file upload (BearID does not fetch URLs)")
            )
        if video:  # its size and header, before a task is queued (cheap: no frame is decoded)
            import anyio

            data = multipart_file(body, content_type, field) or b""
            refused = await anyio.to_thread.run_sync(check_clip_bytes, data, self.max_video_bytes)
            if refused is not None:
                return await self._refuse(send, refused)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
