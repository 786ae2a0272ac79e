"""The OpenAPI document of senpos: BentoML's generated one, described for senpos's users."""

from __future__ import annotations

import senpos
from service.schemas import Error, Info
from service.settings import SETTINGS

ERRORS = {  # status -> when it is answered
    "400": "The body is missing, not valid JSON or breaks a rule: `error` names the first problem and where (such "
           "as `texts[2]`), `detail` lists each.",
    "401": "SENPOS_API_KEY is set and the request has no valid `Authorization: Bearer <key>`.",
    "413": "A size limit, named in `error`: items per request (SENPOS_MAX_ITEMS), characters per text or word list "
           "(SENPOS_MAX_TEXT_CHARS), characters per request (SENPOS_MAX_REQUEST_CHARS, all items together: more "
           "than JSON Schema can state), body bytes (SENPOS_MAX_BODY_BYTES).",
    "415": "The Content-Type is not application/json.",
    "429": "Too many requests in flight (SENPOS_MAX_CONCURRENCY); retry after `Retry-After` seconds.",
    "503": "The model's queue is full, or the server is starting or stopping; retry after `Retry-After` seconds.",
    "504": "No answer within SENPOS_TIMEOUT_S; the request's queued work is dropped.",
}
INFO_ERRORS = ("401",)


def description() -> str:
    limits = SETTINGS.max_request_chars
    return f"""English sentiment analysis and Chinese part-of-speech tagging, batched adaptively.

- `POST /sentiment`: `{{"texts": [...]}}` -> one `{{"label", "score"}}` per text, in order.
- `POST /pos-tag`: `{{"texts": [...]}}`, each item a text to segment or a list of words to tag as given -> one
  `{{"words", "tags", "upos", "offsets"}}` per item, in order.
- `GET /info`: the version and each model's name, version, sha256, headline metrics and provider.

Limits of this server: {SETTINGS.max_items} items per request, {SETTINGS.max_text_chars} characters per item,
{limits["sentiment"]} characters per /sentiment request and {limits["pos"]} per /pos-tag request in all,
{SETTINGS.max_body_bytes} bytes per body; over any size limit the answer is 413. Every answer carries
`x-request-id`; an error is `{{"error", "request_id"}}`, with `Retry-After` on 429 and 503.
{"An API key is required (`Authorization: Bearer <key>`)." if SETTINGS.api_keys else "No API key is required."}"""


def _error_responses(statuses) -> dict:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {s: {"description": ERRORS[s], **ref} for s in statuses}


def describe(document: dict) -> dict:
    document["info"] = {"title": "senpos", "version": senpos.__version__, "description": description()}
    document["servers"] = [{"url": "/"}]  # the API is at the root, wherever the document is read from (/docs/...)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = Error.model_json_schema()
    info = Info.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(info.pop("$defs", {}))
    schemas["Info"] = info
    for path in ("/sentiment", "/pos-tag"):
        post = document["paths"][path]["post"]
        ok = {str(k): v for k, v in post["responses"].items()}["200"]  # BentoML's 400/404/500 are not what we serve
        post["responses"] = {"200": ok, **_error_responses(ERRORS)}
        post["requestBody"]["required"] = True
    document["paths"]["/info"] = {"get": {
        "summary": "Info", "description": "The service version and the models it serves.", "tags": ["Service APIs"],
        "responses": {"200": {"description": "Successful Response", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Info"}}}}, **_error_responses(INFO_ERRORS)}}}
    if SETTINGS.api_keys:  # the key, in the Swagger UI's Authorize dialog and in generated clients
        document["components"]["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer", "description": "a key of SENPOS_API_KEY"}}
        for path, method in (("/sentiment", "post"), ("/pos-tag", "post"), ("/info", "get")):
            document["paths"][path][method]["security"] = [{"bearer": []}]
    return document
