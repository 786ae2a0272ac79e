"""service/middleware.py's connection rebalancing, driven as ASGI (its effect on a real server: test_serving_core)."""

from __future__ import annotations

import asyncio

import pytest

import service.middleware
from service.middleware import RebalanceMiddleware


class FakeClock:
    """service.middleware's clock, advanced only by the answers: the seconds of work each brings are exact on any
    machine (an asyncio.sleep on a loaded one lasts longer than asked)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(service.middleware, "time", fake)
    return fake


def _answer_after(clock: FakeClock, seconds: float):
    async def app(scope, receive, send) -> None:
        clock.now += seconds
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def _closes(app, client) -> bool:
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "client": client}, None, send))
    return (b"connection", b"close") in sent[0]["headers"]


def test_a_connection_is_asked_to_reconnect_once_it_brought_enough_work(clock):
    app = RebalanceMiddleware(_answer_after(clock, 0.03), every=10**9, every_s=0.1)
    assert not _closes(app, ("127.0.0.1", 4000))  # another connection on this worker
    first = [_closes(app, ("127.0.0.1", 5000)) for _ in range(3)]
    assert first == [False, False, False]  # 0.09 s of work so far
    assert _closes(app, ("127.0.0.1", 5000))  # 0.12 s: reconnect
    assert not _closes(app, ("127.0.0.1", 5000))  # counted anew for the new connection
    assert not _closes(app, ("127.0.0.1", 5001))  # other connections have their own count


def test_a_workers_only_connection_is_never_moved(clock):
    app = RebalanceMiddleware(_answer_after(clock, 0.03), every=2, every_s=0.05, shared_s=0.5)
    assert not any(_closes(app, ("127.0.0.1", 5000)) for _ in range(20))  # 0.6 s of work, 20 requests, alone
    app.every = 10**9  # from here on only the work done decides
    assert not _closes(app, ("127.0.0.1", 4000))  # a second connection, 30 ms of work: stays
    assert _closes(app, ("127.0.0.1", 5000))  # the first now shares the worker, after 0.6 s of work: moved
    app.every = 1
    assert _closes(app, ("127.0.0.1", 6000))  # every = 1: keep-alive off, even alone
