"""The adaptive batcher (service/batching.py), in process: joining, order, budget, failures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.batching import Batcher
from service.middleware import ShedLoadMiddleware


class Model:
    """Doubles its inputs, `seconds` per item, and records each call's items (from the model thread)."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None):
        self.calls: list[list] = []
        self.seconds, self.fail_on = seconds, fail_on
        self.threads: set[str] = set()

    def __call__(self, items: list) -> list:
        self.threads.add(threading.current_thread().name)
        self.calls.append(list(items))
        time.sleep(self.seconds * len(items))
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_joined_and_answered_in_order():
    model = Model(seconds=0.002)
    batcher = Batcher(model, max_batch_items=64, max_queue_s=10)

    async def go():
        return await asyncio.gather(*(batcher([i, 100 + i]) for i in range(40)))

    answers = run(go())
    assert answers == [[2 * i, 200 + 2 * i] for i in range(40)]
    assert sum(len(c) for c in model.calls) == 80
    assert len(model.calls) < 40, "requests that queued together were not joined into one call"
    assert all(len(c) <= 64 for c in model.calls)
    assert all(name.startswith("model") for name in model.threads)  # never on the event loop


def test_an_idle_batcher_does_not_wait_for_company():
    batcher = Batcher(Model(), max_batch_items=64, max_queue_s=10)

    async def go():
        t0 = time.perf_counter()
        await batcher([1])
        return time.perf_counter() - t0

    assert run(go()) < 0.05


def test_a_request_larger_than_the_batch_runs_alone():
    model = Model()
    batcher = Batcher(model, max_batch_items=4, max_queue_s=10)
    assert run(batcher(list(range(10)))) == [2 * x for x in range(10)]
    assert model.calls == [list(range(10))]


def test_a_failing_batch_fails_only_its_own_requests():
    model = Model(fail_on=-1)
    batcher = Batcher(model, max_batch_items=1, max_queue_s=10)

    async def go():
        return await asyncio.gather(batcher([1]), batcher([-1]), batcher([3]), return_exceptions=True)

    good, bad, after = run(go())
    assert good == [2] and after == [6]
    assert isinstance(bad, ValueError) and "cannot score -1" in str(bad)


def test_requests_over_the_queue_budget_are_refused_at_once():
    shed = []
    batcher = Batcher(Model(seconds=0.01), max_batch_items=8, max_queue_s=0.05, on_shed=lambda: shed.append(1))

    async def admitted(items):  # what ShedLoadMiddleware does before a request reaches the batcher
        return batcher.refusal() or await batcher(items)

    async def go():
        await batcher([0])  # measures the model's time per item
        assert batcher.refusal() is None  # nothing queued
        return await asyncio.gather(*(admitted([i]) for i in range(30)))

    t0 = time.perf_counter()
    results = run(go())
    refused = [r for r in results if isinstance(r, str)]
    served = [r for r in results if isinstance(r, list)]
    assert refused and served and len(refused) + len(served) == 30
    assert len(shed) == len(refused)
    assert "SENPOS_MAX_QUEUE_MS" in str(refused[0])
    # Only what fits the budget was queued: ~0.05 s of work plus the batch running, not 30 x 0.01 s.
    assert time.perf_counter() - t0 < 0.25


def test_a_burst_let_in_at_once_counts_before_it_reaches_the_queue():
    """A burst passes the door (ShedLoadMiddleware) before any of it is queued, its bodies still being read: the
    requests in flight count too, else all of it was let in (48 of 48, seen once in test_overload)."""
    batcher = Batcher(Model(seconds=0.01), max_batch_items=8, max_queue_s=0.05)

    async def app(scope, receive, send):
        await asyncio.sleep(0.001)  # reading and validating the body
        await batcher([0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    door = ShedLoadMiddleware(app, {"/x": batcher})

    async def request() -> int:
        statuses = []

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await door({"type": "http", "path": "/x"}, None, send)
        return statuses[0]

    async def go():
        await batcher([0])  # measures the model's time per item
        return await asyncio.gather(*(request() for _ in range(30)))

    statuses = run(go())
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) <= 8, statuses  # ~0.05 s of work at 0.01 s each, not all 30
    assert batcher.requests_in_flight == 0


def test_a_cancelled_request_is_not_computed():
    model = Model(seconds=0.02)
    batcher = Batcher(model, max_batch_items=1, max_queue_s=10)

    async def go():
        first = asyncio.ensure_future(batcher([1]))
        gone = asyncio.ensure_future(batcher([2]))
        await asyncio.sleep(0.005)  # [1] is running, [2] is queued
        gone.cancel()
        await first
        await batcher([3])

    run(go())
    assert [1] in model.calls and [3] in model.calls and [2] not in model.calls


@pytest.mark.parametrize("concurrency", [1, 2])
def test_model_calls_in_flight_never_exceed_the_concurrency(concurrency):
    running, peak, lock = 0, 0, threading.Lock()

    def model(items):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return items

    batcher = Batcher(model, max_batch_items=1, max_queue_s=10, concurrency=concurrency)

    async def go():
        return await asyncio.gather(*(batcher([i]) for i in range(8)))

    assert run(go()) == [[i] for i in range(8)]
    assert peak == concurrency
