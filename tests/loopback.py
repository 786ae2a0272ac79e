"""A tiny real HTTP server on a free loopback port, for client behaviour the senpos server cannot be made to show
on demand (an API key check, request ids, a chosen error status, an answer held back)."""

from __future__ import annotations

import http.server
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Seen:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: object
    answer: Answer | None = None  # what the route answered


@dataclass
class Answer:
    status: int = 200
    body: object = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0  # wait this long before answering, unless the client hangs up first


Route = Callable[[Seen], Answer]


@dataclass
class Loopback:
    url: str
    seen: list[Seen]
    hung_up: list[Seen]  # requests whose client closed the connection while the answer was held back


def error(status: int, message: str, request_id: str, **headers: str) -> Answer:
    """An error the way senpos sends one: `{"error", "request_id"}` and the id in `x-request-id`."""
    return Answer(status, {"error": message, "request_id": request_id}, {"x-request-id": request_id, **headers})


def _client_gone(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


@contextmanager
def loopback(route: Route) -> Iterator[Loopback]:
    state = Loopback("", [], [])
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None)
            with lock:
                state.seen.append(seen)
            answer = seen.answer = route(seen)
            deadline = time.monotonic() + answer.hold_s
            while time.monotonic() < deadline:
                if _client_gone(self.connection):
                    with lock:
                        state.hung_up.append(seen)
                    self.close_connection = True
                    return
                time.sleep(0.01)
            body = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in {"content-type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
