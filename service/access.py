"""The outermost middleware: a request id on every answer, API keys and CORS, before anything else runs."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Callable, Collection, Sequence
from typing import Any

Scope = dict[str, Any]
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
CORS_ALLOW_HEADERS = b"authorization, content-type, x-request-id"
CORS_EXPOSE_HEADERS = b"x-request-id, retry-after"


def error_body(message: str, request_id: str, **extra: Any) -> bytes:
    return json.dumps({"error": message, **extra, "request_id": request_id}).encode()


def _with_request_id(body: bytes, request_id: str) -> bytes:
    """An error body `{"error": ...}` gets the request id, so a user can quote it in a report."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict) or "error" not in parsed:
        return body
    return json.dumps({**parsed, "request_id": request_id}, ensure_ascii=False).encode()


class AccessMiddleware:
    """`keys`: when any, the `protected` paths need `Authorization: Bearer <key>` (401 otherwise; compared in
    constant time, never logged). `origins`: browser origins allowed to call (`*` for any); preflights are
    answered here. Every answer carries `x-request-id`: the client's own when it sent a sane one. `routes(scope)`:
    an answer for a request that no route serves (service/errors.py `KnownRoutes`), given here, before any other
    layer sees it."""

    def __init__(self, app, keys: Sequence[str], origins: Sequence[str], protected: Collection[str],
                 routes: Callable[[Scope], tuple[int, str, list[tuple[bytes, bytes]]] | None] | None = None):
        self.app, self.protected, self.routes = app, frozenset(protected), routes
        self.keys = [k.encode() for k in keys]
        self.any_origin = "*" in origins
        self.origins = {o.rstrip("/").encode() for o in origins}

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        sent_id = headers.get(b"x-request-id", b"")
        request_id = sent_id.decode() if SANE_REQUEST_ID.fullmatch(sent_id) else secrets.token_hex(8)
        extra = [(b"x-request-id", request_id.encode()), *self._cors(headers.get(b"origin"))]
        if scope["method"] == "OPTIONS" and b"origin" in headers and b"access-control-request-method" in headers:
            return await self._preflight(send, extra, request_id)
        if self.keys and scope["path"] in self.protected and not self._authorised(headers.get(b"authorization")):
            message = ("this server needs an API key: send `Authorization: Bearer <key>`"
                       if b"authorization" not in headers else "the API key is not valid")
            return await _answer(send, 401, error_body(message, request_id),
                                 [*extra, (b"www-authenticate", b'Bearer realm="senpos"')])
        unrouted = self.routes(scope) if self.routes else None
        if unrouted:
            status, message, route_headers = unrouted
            return await _answer(send, status, error_body(message, request_id), [*extra, *route_headers])
        await self.app(scope, receive, _tagging_send(send, extra, request_id))

    def _authorised(self, header: bytes | None) -> bool:
        scheme, _, token = (header or b"").partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token, ok = token.strip(), False
        for key in self.keys:  # every key compared, so the time taken says nothing about which came close
            ok |= hmac.compare_digest(token, key)
        return ok

    def _cors(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not (self.any_origin or origin.rstrip(b"/") in self.origins):
            return []
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", CORS_EXPOSE_HEADERS)]
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin"),
                (b"access-control-expose-headers", CORS_EXPOSE_HEADERS)]

    async def _preflight(self, send, extra: list[tuple[bytes, bytes]], request_id: str) -> None:
        if not any(k == b"access-control-allow-origin" for k, _ in extra):
            return await _answer(send, 403, error_body("this origin may not call the API (SENPOS_CORS_ORIGINS)",
                                                       request_id), extra)
        await _answer(send, 204, b"", [*extra, (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                                       (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
                                       (b"access-control-max-age", b"600")])


async def _answer(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    kind = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status,
                "headers": [*kind, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _tagging_send(send, extra: list[tuple[bytes, bytes]], request_id: str):
    """Adds `extra` headers to the answer and the request id to a JSON error body."""
    held: dict | None = None
    chunks: list[bytes] = []

    async def tagged(message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
            names = {k.lower(): v for k, v in message["headers"]}
            if (message["status"] >= 400 and names.get(b"content-type", b"").startswith(b"application/json")
                    and b"content-encoding" not in names):
                held = message
                return
        elif message["type"] == "http.response.body" and held is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _with_request_id(b"".join(chunks), request_id)
            headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            await send({**held, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            held, message = None, {"type": "http.response.body", "body": body}
        await send(message)

    return tagged
