"""The service's OpenAPI document (/docs.json), completed: BentoML writes the schemas of the
answers (bearid.serving.schema), but knows a version only inside a built bento and lists none of the
service's own errors. `CompleteDocs` (pure ASGI, no BentoML internals) adds both."""

from __future__ import annotations

import json

from bearid import __version__
from bearid.serving.schema import EXAMPLE, Refused

ERRORS = {
    400: "bad_image, empty, wrong_field, not_a_file: a photo the service cannot read",
    413: "too_large, too_many_pixels: over the upload or pixel limit",
    415: "not_multipart: the photo is not sent as multipart/form-data",
    503: "no_model: no bundle is loaded yet (see GET /model)",
}


def complete_openapi(doc: dict, version: str = __version__) -> dict:
    """BentoML's /docs.json with what it cannot say itself: the package version (it knows a
    version only inside a built bento) and the service's own error answers, as `Refused`."""
    doc.setdefault("info", {})["version"] = version
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(Refused.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}))
    schemas["Refused"] = {k: v for k, v in Refused.model_json_schema().items() if k != "$defs"}
    refused = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}}}
    for route in ("/identify", "/identify_batch"):
        post = doc.get("paths", {}).get(route, {}).get("post")
        if post is not None:
            ok = post.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
            if ok is not None:
                ok["example"] = EXAMPLE if route == "/identify" else {"results": [EXAMPLE]}
            for status, why in ERRORS.items():
                post.setdefault("responses", {})[str(status)] = {"description": why, **refused}
    return doc


class CompleteDocs:
    """ASGI middleware: GET /docs.json answered by the app, then completed."""

    def __init__(self, app, path: str = "/docs.json"):
        self.app, self.path = app, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != self.path or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        start: dict = {}
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    await _send_completed(start, bytes(body), send)

        await self.app(scope, receive, capture)


async def _send_completed(start: dict, body: bytes, send) -> None:
    if start.get("status") == 200:
        try:
            body = json.dumps(complete_openapi(json.loads(body))).encode()
        except ValueError:
            pass  # not JSON after all: pass it on untouched
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})
