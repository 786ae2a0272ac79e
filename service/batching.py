"""Work-conserving adaptive batching with fair, cancellable units of work.

A request is cut into units (service/units.py) of bounded cost. Whenever the model is free, the batcher takes
queued units round-robin over the requests that queued them (a large request cannot starve a small one), up to
`max_batch_items` items and `max_queue_s / 4` of model time (so a call under way never holds a newcomer up for
long), and runs them in one call on a model thread. The batch size adapts to the load: one
item when idle (no wait), large batches under load (more throughput per CPU second).

The batcher is its own door (service/admission.py): the measured time of each call against the cost model's
prediction for that very call corrects the admission's prices for a slower machine (a busy core). A unit whose
request has gone away (timeout, disconnect) is dropped when its turn comes, never run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from service.admission import Admission, shared_ahead
from service.units import Unit

_DECAY = 0.9


@dataclass
class Job:
    unit: Unit
    request: object
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    taken: bool = False  # handed to the model
    dropped: bool = False  # left the queue unrun


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
        self.queues: OrderedDict[object, deque[Job]] = OrderedDict()  # request -> its units, served round-robin
        self.request_s: dict[object, float] = {}  # request -> model seconds of its units still queued
        self.queued_s = self.running_s = 0.0  # model seconds at full-batch prices
        self.queued_units = 0
        self._measured = self._predicted = 0.0  # decayed sums: measured / predicted = slowdown
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="model")
        self._wake: asyncio.Event  # made with the consumer, on the loop of the first `submit`
        self._consumer: asyncio.Task | None = None
        self._ids = itertools.count()

    @property  # Admission declares `slowdown` an attribute: RemoteQueue sets it from its server's reports
    def slowdown(self) -> float:  # type: ignore[override]
        """Measured call time over the cost model's prediction for the same calls, in [1/2, 4]."""
        if not self._predicted:
            return 1.0
        return min(max(self._measured / self._predicted, 0.5), 4.0)

    def expected_wait_s(self, cost_s: float) -> float:
        """Seconds of others' work a request of `cost_s` model seconds would wait for: what is running, and its
        round-robin share of what is queued and ticketed, over the model threads, at the measured speed."""
        ahead = self.running_s + shared_ahead(self.request_s.values(), cost_s)
        return self.seconds(ahead + self.ticketed_s(cost_s))

    async def run(self, units: Sequence[Unit], request: object = None) -> list[list]:
        """Each unit's results, in order. Cancelling the caller drops its units still queued."""
        jobs = self.submit(units, next(self._ids) if request is None else request)
        try:
            return list(await asyncio.gather(*(j.future for j in jobs)))
        finally:
            self.drop(jobs)

    def submit(self, units: Sequence[Unit], request: object) -> list[Job]:
        """Queue units behind `request`'s earlier ones; each job's future gets its unit's results."""
        if self._consumer is None:
            self._wake = asyncio.Event()
            self._consumer = asyncio.get_running_loop().create_task(self._consume())
        loop = asyncio.get_running_loop()
        jobs = [Job(u, request, loop.create_future()) for u in units]
        self.queues.setdefault(request, deque()).extend(jobs)
        cost = sum(u.cost_s for u in units)
        self.request_s[request] = self.request_s.get(request, 0.0) + cost
        self.queued_s += cost
        self.queued_units += len(units)
        self._wake.set()
        return jobs

    def drop(self, jobs: Sequence[Job]) -> int:
        """Cancel jobs nobody waits for: those still queued are never run (returns how many)."""
        dropped = sum(self._forget(job) for job in jobs)
        for job in jobs:
            job.future.cancel()
        if dropped and self.on_drop:
            self.on_drop(dropped)
        return dropped

    def _forget(self, job: Job) -> bool:
        """Take a queued job out of the queue's accounting, once."""
        if job.taken or job.dropped:
            return False
        job.dropped = True
        self._unqueue(job)
        return True

    def _unqueue(self, job: Job) -> None:
        self.queued_s -= job.unit.cost_s
        self.queued_units -= 1
        left = self.request_s.pop(job.request, 0.0) - job.unit.cost_s
        if left > 1e-12:
            self.request_s[job.request] = left

    def _take(self) -> list[Job]:
        """Whole units, one per request in turn, up to `max_batch_items` items and a quarter of the queue budget
        in model time (a larger unit goes alone)."""
        jobs: list[Job] = []
        n, cost = 0, 0.0
        while self.queues:
            request, queue = next(iter(self.queues.items()))
            while queue and (queue[0].dropped or queue[0].future.done()):
                self._forget(queue.popleft())
            if not queue:
                del self.queues[request]
                self.request_s.pop(request, None)
                continue
            size, price = len(queue[0].unit.items), queue[0].unit.cost_s
            if jobs and (n + size > self.max_batch_items or cost + price > self.max_queue_s / 4):
                break
            job = queue.popleft()
            self.queues.move_to_end(request)
            job.taken = True
            self._unqueue(job)
            jobs.append(job)
            n, cost = n + size, cost + price
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

    async def _run(self, jobs: list[Job]) -> None:
        items = [x for job in jobs for x in job.unit.items]
        cost = sum(job.unit.cost_s for job in jobs)
        self.running_s += cost
        started = time.perf_counter()
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self._pool, self._call, items)
        except Exception as e:  # one bad batch fails its own requests, never the batcher
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
                    job.future.exception()  # retrieved here: a caller that went away never will
            return
        finally:
            self.running_s -= cost
        results, predicted = outcome
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
