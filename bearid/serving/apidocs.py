"""The service's OpenAPI document (/docs.json), completed: BentoML writes the schemas of the
answers (bearid.serving.schema), but knows a version only inside a built bento, describes
the service with its own README and contact, names the answers' schemas after its own
descriptors, documents /readyz as always ready and lists none of the service's own errors.
`CompleteDocs` (pure ASGI, no BentoML internals) puts each right."""

from __future__ import annotations

import json

from bearid import __version__
from bearid.serving.schema import EXAMPLE, Refused

ERRORS = {
    400: "bad_image, empty, wrong_field, many_photos, not_a_file: a photo the service cannot read, "
    "or not sent as one file upload in the API's field",
    413: "too_large, too_many_pixels: over the upload or pixel limit",
    415: "not_multipart: the photo is not sent as multipart/form-data",
    503: "no_model: no bundle is loaded yet (see GET /model)",
}

DESCRIPTION = """\
BearID tells individual brown bears apart from photos. Send a photo to `POST /identify`
(multipart field `photo`) and the answer lists every bear face in it: its box and five
landmarks in the photo's displayed pixels, the bear's ID (null for a bear the model does
not know), the classifier's probability and the best candidates, and the open-set score
(`familiarity`) it was judged by. `POST /identify_batch` takes several photos (field
`photos`, repeated) and answers each, in order, or says why not.

`GET /model` names the model served (its `version` is in every answer) and its open-set
threshold; `GET /readyz` is 200 once a model is loaded (503 before); `GET /metrics` is
Prometheus. Errors are `{"error": ..., "code": ...}` with a 4xx (503 while no model is
loaded). Answers may gain fields in later releases: read the ones you know, keep the rest.

The Python client (`bearid.client.BearIDClient`, base install) and batch scoring
(`bearid score`) are in the BearID package; the documentation is `docs/serving.md`
(the service, its answers and the client) and `docs/deployment.md` (a bento, Kubernetes)
in BearID's source (`mkdocs serve` shows it as a site).
"""

CONTACT = {"name": "BearID developers"}
LICENSE = {"name": "MIT"}
READYZ = {
    "200": {"description": "ready: a model is loaded and photos are answered"},
    "503": {"description": "not ready yet: no model is loaded (GET /model says why)"},
}
DESCRIPTOR = "IODescriptor"  # what BentoML appends to the name of an API's answer schema


def _renamed(node, names: dict[str, str]):
    """`node` with every $ref and title naming an old schema name given the new one."""
    if isinstance(node, dict):
        out = {k: _renamed(v, names) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in names:
            out["$ref"] = ref.rsplit("/", 1)[0] + "/" + names[ref.rsplit("/", 1)[-1]]
        if isinstance(out.get("title"), str) and out["title"] in names:
            out["title"] = names[out["title"]]
        return out
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def complete_openapi(doc: dict, version: str = __version__) -> dict:
    """BentoML's /docs.json with what it cannot say itself: the package version (it knows a
    version only inside a built bento), BearID's own description and contact, the answers'
    schemas under the models' names (`Identified`, not `IdentifiedIODescriptor`), /readyz's
    503, the service's own error answers as `Refused`, and that a request's multipart body
    takes only the photo field (the guard refuses any other)."""
    info = doc.setdefault("info", {})
    info.update(version=version, description=DESCRIPTION, contact=CONTACT, license=LICENSE)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    names = {
        name: name[: -len(DESCRIPTOR)]
        for name in schemas
        if name.endswith(DESCRIPTOR) and name[: -len(DESCRIPTOR)] and name[: -len(DESCRIPTOR)] not in schemas
    }
    if names:
        doc = _renamed(doc, names)
        schemas = doc["components"]["schemas"]
        for old, new in names.items():
            schemas[new] = schemas.pop(old)
    schemas.update(Refused.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}))
    schemas["Refused"] = {k: v for k, v in Refused.model_json_schema().items() if k != "$defs"}
    refused = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}}}
    readyz = doc.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz.setdefault("responses", {}).update(READYZ)
        readyz["description"] = "Whether this worker takes photos: 200 once a model is loaded, 503 until then."
    for route in ("/identify", "/identify_batch"):
        post = doc.get("paths", {}).get(route, {}).get("post")
        if post is not None:
            ok = post.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
            if ok is not None:
                ok["example"] = EXAMPLE if route == "/identify" else {"results": [EXAMPLE]}
            for status, why in ERRORS.items():
                post.setdefault("responses", {})[str(status)] = {"description": why, **refused}
            form = post.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema")
            if isinstance(form, dict) and form.get("type") == "object":
                form["additionalProperties"] = False
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
