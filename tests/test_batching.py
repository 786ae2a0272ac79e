"""The adaptive batcher (service/batching.py), in process: joining, order, fairness, cost-aware admission,
dropping work nobody waits for."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
from starlette.requests import Request

from senpos.runtime import BatchCost
from service.admission import Door
from service.batching import Batcher
from service.middleware import ShedLoadMiddleware, ticket_of
from service.units import Pricing, Unit


class Model:
    """Doubles its inputs, `seconds` per item, and records each call's items (from the model thread). With
    `gated`, its first call waits for `gate` (`started` says it has begun), so a test can arrange the queue while
    a call is known to be running instead of guessing how long a sleep lasts."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None, gated: bool = False):
        self.calls: list[list] = []
        self.seconds, self.fail_on = seconds, fail_on
        self.threads: set[str] = set()
        self.started, self.gate = threading.Event(), threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, items: list) -> list:
        self.threads.add(threading.current_thread().name)
        self.calls.append(list(items))
        self.started.set()
        self.gate.wait(30)  # a bound for a broken test only: the test opens the gate
        time.sleep(self.seconds * len(items))
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * x for x in items]


async def ask(batcher: Batcher, items: list, cost_per_item: float = 0.0, unit_items: int = 0) -> list:
    """One request: its items in units of `unit_items` (all in one unit by default); flat results."""
    size = unit_items or len(items)
    units = [Unit(items[a : a + size], cost_per_item * len(items[a : a + size])) for a in range(0, len(items), size)]
    return [r for unit in await batcher.run(units) for r in unit]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_joined_and_answered_in_order():
    model = Model(seconds=0.002)
    batcher = Batcher(model, max_batch_items=64, max_queue_s=10)

    async def go():
        return await asyncio.gather(*(ask(batcher, [i, 100 + i]) for i in range(40)))

    answers = run(go())
    assert answers == [[2 * i, 200 + 2 * i] for i in range(40)]
    # All 40 queue before the batcher's first turn on the loop: a full call of 32 requests, then the other 8.
    assert [len(c) for c in model.calls] == [64, 16], "requests that queued together were not joined into one call"
    assert all(len(c) <= 64 for c in model.calls)
    assert all(name.startswith("model") for name in model.threads)  # never on the event loop


def test_an_idle_batcher_does_not_wait_for_company():
    """A lone request goes to the model at once: the batcher arms no timer (asyncio.sleep, wait_for, a timeout:
    all go through the loop's call_at) to wait for others to join it, whatever the machine's speed."""
    model = Model()
    batcher = Batcher(model, max_batch_items=64, max_queue_s=10)
    timers: list[float] = []

    async def go():
        loop = asyncio.get_running_loop()
        call_at = loop.call_at

        def recorded(when, *args, **kwargs):
            timers.append(when - loop.time())
            return call_at(when, *args, **kwargs)

        loop.call_at = recorded  # call_later goes through it too
        try:
            return await ask(batcher, [1])
        finally:
            loop.call_at = call_at

    assert run(go()) == [2]
    assert model.calls == [[1]]
    assert timers == [], f"a lone request waited on a timer of {timers} s"


def test_a_unit_larger_than_the_batch_runs_alone():
    model = Model()
    batcher = Batcher(model, max_batch_items=4, max_queue_s=10)
    assert run(ask(batcher, list(range(10)))) == [2 * x for x in range(10)]
    assert model.calls == [list(range(10))]


def test_a_failing_batch_fails_only_its_own_requests():
    model = Model(fail_on=-1)
    batcher = Batcher(model, max_batch_items=1, max_queue_s=10)

    async def go():
        return await asyncio.gather(ask(batcher, [1]), ask(batcher, [-1]), ask(batcher, [3]), return_exceptions=True)

    good, bad, after = run(go())
    assert good == [2] and after == [6]
    assert isinstance(bad, ValueError) and "cannot score -1" in str(bad)


def test_units_of_a_large_request_interleave_with_a_small_one():
    """Round-robin over requests: a small request queued behind 40 units of a large one runs next, not last."""
    model = Model(gated=True)
    batcher = Batcher(model, max_batch_items=4, max_queue_s=100)

    async def go():
        large = asyncio.ensure_future(ask(batcher, list(range(160)), unit_items=4))
        try:
            await asyncio.to_thread(model.started.wait, 30)  # the large request's first unit is running
            small = asyncio.ensure_future(ask(batcher, [1000]))
            await asyncio.sleep(0)  # the small request queues behind the other 39
        finally:
            model.gate.set()
        return await small, await large

    small, large = run(go())
    assert small == [2000] and large == [2 * x for x in range(160)]
    # The call that was running, the large request's next turn (it was queued first), then the small one.
    assert model.calls.index([1000]) == 2, model.calls[:4]


def test_the_wait_is_priced_in_model_seconds_of_what_is_queued():
    """Admission counts what the queued units cost, as a round-robin share: a request of cost c waits for at
    most c of each queued request's work, and may wait as long as the budget or its own work, if longer."""
    batcher = Batcher(Model(), max_batch_items=8, max_queue_s=0.5)

    async def go():  # queued without yielding to the loop, so nothing runs while we look
        for large in ("a", "b"):
            batcher.submit([Unit([1] * 8, 0.01) for _ in range(1000)], request=large)  # 10 s of work each
        small_behind_large, large_behind_large = batcher.refusal(0.01), batcher.refusal(1.0)  # waits 0.02, 2 s
        for i in range(100):
            batcher.submit([Unit([1], 0.006)], request=i)  # 100 small requests: 0.6 s
        return small_behind_large, large_behind_large, batcher.refusal(0.006)

    small_behind_large, large_behind_large, small_behind_many = run(go())
    assert small_behind_large is None  # it is served after one turn of the large request, not after all of it
    assert "SENPOS_MAX_QUEUE_MS" in large_behind_large
    assert "SENPOS_MAX_QUEUE_MS" in small_behind_many


def test_a_call_holds_at_most_a_quarter_of_the_budget():
    model = Model()
    batcher = Batcher(model, max_batch_items=64, max_queue_s=0.4)
    run(ask(batcher, list(range(40)), cost_per_item=0.01, unit_items=2))  # 0.02 s a unit, at most 0.1 s a call
    assert max(len(c) for c in model.calls) == 10


def test_measured_calls_slower_than_predicted_raise_the_price():
    """A busy machine: the calls take twice what the cost model predicted, so queued work is priced twice."""

    def model(items):
        time.sleep(0.02)
        return items, 0.01  # (results, the cost model's prediction for this call)

    batcher = Batcher(model, max_batch_items=8, max_queue_s=10, costed=True)
    run(asyncio.wait_for(ask(batcher, [1, 2]), 5))
    assert 1.6 < batcher.slowdown <= 4.0
    batcher.request_s = {"queued": 1.0}
    assert batcher.expected_wait_s(5.0) == pytest.approx(batcher.slowdown)


def test_requests_over_the_queue_budget_are_refused_at_once():
    shed = []
    model = Model(seconds=0.01)
    batcher = Batcher(model, max_batch_items=8, max_queue_s=0.05, on_shed=lambda: shed.append(1))

    finished: list[str] = []  # "refused" or "served", in the order the requests ended

    async def admitted(items):  # what ShedLoadMiddleware and the pipeline do around the batcher
        with batcher.admit(0.01) as ticket:
            if ticket.refusal:
                result: str | list = ticket.refusal
            else:
                ticket.release()  # its units queue now
                result = await ask(batcher, items, cost_per_item=0.01)
        finished.append("refused" if ticket.refusal else "served")
        return result

    async def go():
        return await asyncio.gather(*(admitted([i]) for i in range(30)))

    results = run(go())
    refused = [r for r in results if isinstance(r, str)]
    served = [r for r in results if isinstance(r, list)]
    assert refused and served and len(refused) + len(served) == 30
    assert len(shed) == len(refused)
    assert "SENPOS_MAX_QUEUE_MS" in str(refused[0])
    # Only what fits the budget was queued (0.05 s of work at 0.01 s a request), the first ones to arrive ...
    assert served == [[2 * i] for i in range(len(served))] and len(served) <= 6, served
    assert sum(len(c) for c in model.calls) == len(served)
    # ... and every refusal came back before any admitted request was answered: none waited for the queue.
    assert finished == ["refused"] * len(refused) + ["served"] * len(served), finished
    assert not batcher.tickets


def test_a_burst_let_in_at_once_counts_before_it_reaches_the_queue():
    """A burst passes the door (ShedLoadMiddleware) before any of it is queued, its bodies still being read: the
    tickets taken at the door (priced from each body's size) count, else all of it would be let in."""
    batcher = Batcher(Model(seconds=0.01), max_batch_items=8, max_queue_s=0.05)

    async def app(scope, receive, send):
        await asyncio.sleep(0.001)  # reading and validating the body
        ticket_of(Request(scope)).release()  # as the pipeline does when its units queue
        await ask(batcher, [0], cost_per_item=0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    price = Pricing(BatchCost(step=0.0, row_step=0.001, call=0.0), width=1, bytes_per_step=1.0)  # 1 ms a byte
    door = ShedLoadMiddleware(app, lambda: {"/x": Door(batcher, lambda: price, limit_chars=10**6)})

    async def request() -> int:
        statuses = []

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await door({"type": "http", "path": "/x", "headers": [(b"content-length", b"10")]}, None, send)
        return statuses[0]

    async def go():
        return await asyncio.gather(*(request() for _ in range(30)))

    statuses = run(go())
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) <= 8, statuses  # ~0.05 s of work at 0.01 s each, not all 30
    assert not batcher.tickets


def test_a_cancelled_request_is_not_computed():
    model = Model(gated=True)
    dropped = []
    batcher = Batcher(model, max_batch_items=1, max_queue_s=10, on_drop=dropped.append)

    async def go():
        first = asyncio.ensure_future(ask(batcher, [1]))
        gone = asyncio.ensure_future(ask(batcher, [2, 3, 4], unit_items=1))
        try:
            await asyncio.to_thread(model.started.wait, 30)  # [1] is running, [2], [3], [4] are queued
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
        finally:
            model.gate.set()
        await first
        await ask(batcher, [5])

    run(go())
    assert model.calls == [[1], [5]]
    assert dropped == [3] and batcher.queued_units == 0 and batcher.queued_s == pytest.approx(0.0)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_model_calls_in_flight_never_exceed_the_concurrency(concurrency):
    """`concurrency` calls do run at once (each waits for the others at a barrier, which a batcher running fewer
    at a time would break) and never more (the peak counts calls in flight before the barrier)."""
    running, peak, lock = 0, 0, threading.Lock()
    together = threading.Barrier(concurrency, timeout=30)

    def model(items):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        together.wait()
        time.sleep(0.01)  # a third call let in at once would raise the peak
        with lock:
            running -= 1
        return items

    batcher = Batcher(model, max_batch_items=1, max_queue_s=10, concurrency=concurrency)

    async def go():
        return await asyncio.gather(*(ask(batcher, [i]) for i in range(8)))

    assert run(go()) == [[i] for i in range(8)]
    assert peak == concurrency
