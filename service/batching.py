"""Work-conserving adaptive batching with cost-aware admission and fair, cancellable units of work.

A request is cut into units (service/units.py) of bounded cost. Whenever the model is free, the batcher takes
queued units round-robin over the requests that queued them (a large request cannot starve a small one), up to
`max_batch_items` items, and runs them in one call on a model thread. The batch size adapts to the load: one
item when idle (no wait), large batches under load (more throughput per CPU second).

Admission is priced in model seconds, from what is queued and running now: each unit carries its cost from the
model's measured cost model (senpos/runtime.py BatchCost), priced at the width the queue will batch it at, and a
request let in but not yet queued holds a reservation estimated from its body size. A new request is refused
(503) when the queue ahead of it would take longer than `max_queue_s`. The measured time of each call against
the cost model's prediction for that very call corrects for a machine slower than at load (a busy core).
A unit whose request has gone away (timeout, disconnect) is dropped when its turn comes, never run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_DECAY = 0.9


@dataclass
class Unit:
    """Items for one model call's worth of work, at most; `cost_s` is their model time inside a full batch."""

    items: Sequence[Any]
    cost_s: float


@dataclass
class _Job:
    unit: Unit
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    taken: bool = False  # handed to the model
    dropped: bool = False  # left the queue unrun


@dataclass
class Reservation:
    """Model seconds a request admitted at the door will add to the queue; released once its units queue."""

    cost_s: float
    admission: Admission | None = None

    def release(self) -> None:
        if self.admission is not None:
            self.admission.reserved_s -= self.cost_s
            self.admission = None


# The reservation of the request being handled: set at the door (ShedLoadMiddleware), released by `run`.
RESERVATION: ContextVar[Reservation | None] = ContextVar("senpos_reservation", default=None)


class Admission:
    """The door to a model's queue: refuse a request when the work ahead of it would take over `max_queue_s`."""

    def __init__(self, max_queue_s: float, on_shed: Callable[[], None] | None = None):
        self.max_queue_s, self.on_shed = max_queue_s, on_shed
        self.reserved_s = 0.0  # model seconds of requests let in whose units have not queued yet

    def expected_wait_s(self) -> float:
        raise NotImplementedError

    def refusal(self) -> str | None:
        """Why a request arriving now is refused (and counted), or None when it is welcome."""
        wait = self.expected_wait_s()
        if wait <= self.max_queue_s:
            return None
        if self.on_shed:
            self.on_shed()
        return (f"overloaded: about {wait:.1f} s of model work is queued ahead of this request "
                f"(budget {self.max_queue_s:.1f} s, SENPOS_MAX_QUEUE_MS); retry later")

    @contextmanager
    def admit(self, cost_s: float) -> Iterator[str | None]:
        """`with door.admit(cost) as refusal:` refuses now, or reserves `cost` model seconds for the request
        until its units queue (`release_reservation`) or it ends."""
        refusal = self.refusal()
        if refusal:
            yield refusal
            return
        self.reserved_s += cost_s
        reservation = Reservation(cost_s, self)
        token = RESERVATION.set(reservation)
        try:
            yield None
        finally:
            reservation.release()
            RESERVATION.reset(token)


def release_reservation() -> None:
    """The current request's units are about to queue: its door reservation ends."""
    if reservation := RESERVATION.get():
        reservation.release()


class Batcher(Admission):
    """`await batcher.run(units)` runs `fn` over the units' items, joined with other requests' units.

    `fn(list) -> list` returns one result per item, in order, on one of `concurrency` model threads; with
    `costed=True` it returns (results, the cost model's seconds for this very call), which corrects the prices.
    """

    def __init__(self, fn: Callable[[list], Any], max_batch_items: int, max_queue_s: float,
                 concurrency: int = 1, costed: bool = False,
                 on_batch: Callable[[int, float, float], None] | None = None,
                 on_shed: Callable[[], None] | None = None, on_drop: Callable[[int], None] | None = None):
        super().__init__(max_queue_s, on_shed)
        self.fn, self.max_batch_items = fn, max_batch_items
        self.concurrency, self.costed = concurrency, costed
        self.on_batch = on_batch  # (items, seconds queued by the oldest unit, seconds running) -> None
        self.on_drop = on_drop  # (units) -> None: units dropped because nobody waits for them
        self.queues: OrderedDict[object, deque[_Job]] = OrderedDict()  # request -> its units, served round-robin
        self.queued_s = self.running_s = 0.0  # model seconds at full-batch prices
        self.queued_units = 0
        self._measured = self._predicted = 0.0  # decayed sums: measured / predicted = slowdown
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="model")
        self._wake: asyncio.Event | None = None
        self._consumer: asyncio.Task | None = None
        self._ids = itertools.count()

    @property
    def slowdown(self) -> float:
        """Measured call time over the cost model's prediction for the same calls, in [1/2, 4]."""
        if not self._predicted:
            return 1.0
        return min(max(self._measured / self._predicted, 0.5), 4.0)

    def expected_wait_s(self) -> float:
        """How long a request arriving now would wait before its own units start: the work queued, running and
        reserved ahead of it, in model seconds, shared over the model threads."""
        return (self.queued_s + self.running_s + self.reserved_s) * self.slowdown / self.concurrency

    async def run(self, units: Sequence[Unit], request: object = None) -> list[list]:
        """Each unit's results, in order. Cancelling the caller drops its units still queued."""
        release_reservation()
        jobs = self.submit(units, next(self._ids) if request is None else request)
        try:
            return list(await asyncio.gather(*(j.future for j in jobs)))
        finally:
            self.drop(jobs)

    def submit(self, units: Sequence[Unit], request: object) -> list[_Job]:
        """Queue units behind `request`'s earlier ones; each job's future gets its unit's results."""
        if self._consumer is None:
            self._wake = asyncio.Event()
            self._consumer = asyncio.get_running_loop().create_task(self._consume())
        loop = asyncio.get_running_loop()
        jobs = [_Job(u, loop.create_future()) for u in units]
        self.queues.setdefault(request, deque()).extend(jobs)
        self.queued_s += sum(u.cost_s for u in units)
        self.queued_units += len(units)
        self._wake.set()
        return jobs

    def drop(self, jobs: Sequence[_Job]) -> int:
        """Cancel jobs nobody waits for: those still queued are never run (returns how many)."""
        dropped = sum(self._forget(job) for job in jobs)
        for job in jobs:
            job.future.cancel()
        if dropped and self.on_drop:
            self.on_drop(dropped)
        return dropped

    def _forget(self, job: _Job) -> bool:
        """Take a queued job out of the queue's accounting, once."""
        if job.taken or job.dropped:
            return False
        job.dropped = True
        self.queued_s -= job.unit.cost_s
        self.queued_units -= 1
        return True

    def _take(self) -> list[_Job]:
        """Whole units, one per request in turn, up to `max_batch_items` items (a larger unit goes alone)."""
        jobs, n = [], 0
        while self.queues:
            request, queue = next(iter(self.queues.items()))
            while queue and (queue[0].dropped or queue[0].future.done()):
                self._forget(queue.popleft())
            if not queue:
                del self.queues[request]
                continue
            size = len(queue[0].unit.items)
            if jobs and n + size > self.max_batch_items:
                break
            job = queue.popleft()
            self.queues.move_to_end(request)
            job.taken = True
            self.queued_s -= job.unit.cost_s
            self.queued_units -= 1
            jobs.append(job)
            n += size
        return jobs

    async def _consume(self) -> None:
        free = asyncio.Semaphore(self.concurrency)
        while True:
            if not self.queues:
                self._wake.clear()
                await self._wake.wait()
            await free.acquire()
            jobs = self._take()
            if not jobs:
                free.release()
                continue
            asyncio.get_running_loop().create_task(self._run(jobs)).add_done_callback(lambda _: free.release())

    async def _run(self, jobs: list[_Job]) -> None:
        items = [x for job in jobs for x in job.unit.items]
        cost = sum(job.unit.cost_s for job in jobs)
        self.running_s += cost
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._pool, self._call, items)
        except Exception as e:  # one bad batch fails its own requests, never the batcher
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
                    job.future.exception()  # retrieved here: a caller that went away never will
            return
        finally:
            self.running_s -= cost
        results, predicted = results
        seconds = time.perf_counter() - started
        if predicted:
            self._measured = _DECAY * self._measured + seconds
            self._predicted = _DECAY * self._predicted + predicted
        k = 0
        for job in jobs:
            n = len(job.unit.items)
            if not job.future.done():
                job.future.set_result(list(results[k : k + n]))
            k += n
        if self.on_batch:
            self.on_batch(len(items), started - jobs[0].enqueued, seconds)

    def _call(self, items: list) -> tuple[Sequence[Any], float]:
        return self.fn(items) if self.costed else (self.fn(items), 0.0)
