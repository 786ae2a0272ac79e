"""ASGI middleware: early load shedding (503), a request body size limit (413) and cancelling a request whose
client went away, JSON only (415), Retry-After on load-shedding answers (503/429), a timeout (504)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request

from service.admission import Door, Ticket

Scope = dict[str, Any]


async def _reply(send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ShedLoadMiddleware:
    """Refuse a request for a model whose queue is over its budget at once: 503 with Retry-After and a JSON
    body saying why, before the body is read or validated, so a refusal under overload costs little CPU and
    comes back fast instead of queueing. `doors()` maps a route to its door (service/admission.py); the ticket
    of a request let in goes with it to its handler (`ticket_of`), and is given back when it ends at the latest.
    """

    def __init__(self, app, doors: Callable[[], Mapping[str, Door]], retry_after_s: int = 1):
        self.app, self.doors = app, doors
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope: Scope, receive, send) -> None:
        door = self.doors().get(scope.get("path", "")) if scope["type"] == "http" else None
        if door is None:
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        with door.admit(int(length) if length.isdigit() else 0) as ticket:
            if ticket.refusal:
                return await _reply(send, 503, ticket.refusal, [(b"retry-after", self.retry_after)])
            scope.setdefault("state", {})[_TICKET] = ticket
            await self.app(scope, receive, send)


_TICKET = "senpos_ticket"


def ticket_of(request: Request) -> Ticket:
    """The ticket ShedLoadMiddleware let `request` in with (an empty one if it came another way)."""
    return request.scope.get("state", {}).get(_TICKET) or Ticket(0.0)


class TimeoutMiddleware:
    """504 when no answer has started within `timeout` seconds: BentoML's own, with its timer cancelled.

    BentoML 1.4.40's TimeoutMiddleware (traffic.timeout) leaves every request's timer scheduled for the full
    timeout after the answer, and the timer keeps the request's context alive that long, objects that every full
    garbage collection then walks (docs/design.md has the measurement). The seam puts this one in its place.
    """

    def __init__(self, app, timeout: float):
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def expire() -> None:
            if not started.done():
                started.set_exception(asyncio.TimeoutError)

        timer = loop.call_later(self.timeout, expire)

        async def watched_send(message) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        try:
            await started
        except TimeoutError:
            if task.cancel():
                await _reply(send, 504, f"not able to process the request in {self.timeout:g} seconds")
            return
        finally:
            timer.cancel()
        await task


class RebalanceMiddleware:
    """Ask a client to reconnect now and then (`Connection: close`): on about one response in `every`, as nginx's
    keepalive_requests does, and once a connection has kept this worker busy for `every_s` seconds, so a few
    connections carrying large requests spread out too. The API worker processes share one listening socket and
    connections tend to land on a single worker, which then does all the work while the other idles; a
    reconnecting client is accepted by whichever worker gets to it first, and the less busy one usually does.
    Only a worker that has answered another connection in the last `shared_s` seconds asks: moving its only
    connection cannot even out the load, and half the time it would land beside another one. `every` = 1 turns
    keep-alive off."""

    def __init__(self, app, every: int = 100, every_s: float = 2.0, shared_s: float = 1.0):
        self.app, self.every, self.every_s, self.shared_s = app, every, every_s, shared_s
        self.served: dict[Any, float] = {}  # connection (client address) -> seconds answering it since it connected
        self.seen: dict[Any, float] = {}  # connection -> when it last had an answer here

    def shared(self, connection: Any, now: float) -> bool:
        """Whether another connection was answered here in the last `shared_s` seconds."""
        if len(self.seen) > 1_000:  # connections their clients closed leave entries behind
            self.seen = {c: t for c, t in self.seen.items() if now - t < self.shared_s}
        return any(c != connection and now - t < self.shared_s for c, t in self.seen.items())

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or self.every <= 0:
            return await self.app(scope, receive, send)
        connection, started = scope.get("client"), time.monotonic()

        async def closing(message):
            if message["type"] == "http.response.start":
                now = time.monotonic()
                served = self.served.pop(connection, 0.0) + now - started
                if self.every == 1 or (self.shared(connection, now) and (
                        served >= self.every_s or not random.randrange(self.every))):
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
                    self.seen.pop(connection, None)
                elif connection is not None:
                    if len(self.served) > 10_000:
                        self.served.clear()
                    self.served[connection] = served
                    self.seen[connection] = now
            await send(message)

        await self.app(scope, receive, closing)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413: by Content-Length when given, else while reading.

    The body is read here in full (the JSON APIs need all of it anyway) and replayed to the app, so an
    oversized body never reaches the app, whose error handling would turn it into a 500.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        too_big = f"request body is larger than the limit of {self.max_bytes} bytes (SENPOS_MAX_BODY_BYTES)"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    return await _reply(send, 413, too_big)
            except ValueError:
                return await _reply(send, 400, "invalid Content-Length header")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _reply(send, 413, too_big)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed, answering = b"".join(chunks), False, False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watched_send(message) -> None:
            nonlocal answering
            answering = True
            await send(message)

        # Work nobody waits for is dropped: once the body is in, the server's next message is the client's
        # disconnect (or the end of our answer); a disconnect before the answer starts cancels the request.
        task = asyncio.ensure_future(self.app(scope, replay, watched_send))
        gone = asyncio.ensure_future(receive())
        try:
            done, _ = await asyncio.wait([task, gone], return_when=asyncio.FIRST_COMPLETED)
            left = task not in done and not gone.exception() and gone.result()["type"] == "http.disconnect"
            if left and not answering:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return
            await task
        finally:
            gone.cancel()
            task.cancel()


class JsonOnlyMiddleware:
    """POST bodies must be JSON: any other Content-Type is a 415 here, before BentoML tries to parse it
    (a multipart type without a boundary made it answer 500). A missing Content-Type is read as JSON. The
    `binary` paths (the Open Inference Protocol's infer paths) also take application/octet-stream."""

    def __init__(self, app, binary: frozenset[str] = frozenset()):
        self.app, self.binary = app, binary

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            ctype = dict(scope.get("headers") or []).get(b"content-type", b"application/json")
            media = ctype.split(b";")[0].strip().lower()
            if media != b"application/json" and not (media == b"application/octet-stream"
                                                     and scope.get("path") in self.binary):
                return await _reply(
                    send, 415, f"Content-Type must be application/json, not {media.decode('latin-1')!r}"
                )
        await self.app(scope, receive, send)


class RetryAfterMiddleware:
    """A safety net for 429 and 503 answers raised inside the app (BentoML turns a 5xx exception into "An
    unexpected error has occurred"): they get `Retry-After`, and a 503 a JSON body saying to retry. The service's
    own refusals do not pass here: ShedLoadMiddleware (outside this one) sends both itself, and BentoML's 429 for
    SENPOS_MAX_CONCURRENCY comes from its own middleware, outside every one of ours."""

    BODY_503 = json.dumps({"error": "service unavailable: overloaded, restarting or shutting down; "
                                    "retry after the Retry-After seconds"}).encode()

    def __init__(self, app, seconds: int = 1):
        self.app = app
        self.value = str(seconds).encode()

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        replacing = False

        async def with_retry_after(message):
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] in (429, 503):
                drop = (b"retry-after", b"content-length") if message["status"] == 503 else (b"retry-after",)
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop]
                headers.append((b"retry-after", self.value))
                if message["status"] == 503:
                    replacing = True
                    headers.append((b"content-length", str(len(self.BODY_503)).encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and replacing:
                if message.get("more_body", False):
                    return  # the original body is replaced as a whole when its last part comes
                message = {"type": "http.response.body", "body": self.BODY_503}
            await send(message)

        await self.app(scope, receive, with_retry_after)
