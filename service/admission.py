"""Admission: the door to a model's queue, and the ticket a request holds from the door until its work queues.

Admission is priced in model seconds, from what is queued and running now: each unit carries its cost from the
model's measured cost model (senpos/runtime.py BatchCost), priced at the width the queue will batch it at, and a
request let in but not yet queued holds a ticket, estimated from its body size. Served round-robin, a new
request of cost c finishes after about c of every other request's work (all of it, when less): the work ahead
of it is the sum over queued requests of min(their cost, c). It is refused (503) when that would take longer
than `max_queue_s` (or than its own work, for a larger request), so small requests still get in while maximal
ones are served.

A ticket is taken at the door (service/middleware.py ShedLoadMiddleware, before the body is read) and handed to
the request's handler with the request; the pipeline gives it back when the request's units queue, and the door
takes it back when the request ends, whichever comes first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from service.units import Pricing, Unit

AHEAD_GRID_S = (0.001, 0.01, 0.1, 1.0, 10.0)  # request costs at which a remote queue reports `shared_ahead`


def shared_ahead(costs, cost_s: float) -> float:
    """Round-robin: the work done for others before a request of `cost_s` finishes, with `costs` queued."""
    return sum(min(c, cost_s) for c in costs)


def ahead_at(grid_values: Sequence[float], cost_s: float) -> float:
    """`shared_ahead` for `cost_s`, from its values at AHEAD_GRID_S (piecewise linear in between)."""
    if cost_s <= AHEAD_GRID_S[0]:
        return grid_values[0] * cost_s / AHEAD_GRID_S[0]
    for (c0, v0), (c1, v1) in itertools.pairwise(zip(AHEAD_GRID_S, grid_values, strict=True)):
        if cost_s <= c1:
            return v0 + (v1 - v0) * (cost_s - c0) / (c1 - c0)
    return grid_values[-1]


@dataclass(eq=False)
class Ticket:
    """A request at the door: refused (`refusal` says why), or let in, holding `cost_s` model seconds of its
    admission's queue until `release()` (once its units queue, or when it ends)."""

    cost_s: float
    refusal: str | None = None
    admission: Admission | None = None

    def release(self) -> None:
        if self.admission is not None:
            self.admission.tickets.discard(self)
            self.admission = None


class Admission:
    """The door to a model's queue: refuse a request when the work ahead of it would take over `max_queue_s`."""

    slowdown: float = 1.0  # measured seconds per second the cost model predicts
    concurrency: int = 1  # model calls at once

    def __init__(self, max_queue_s: float, on_shed: Callable[[], None] | None = None):
        self.max_queue_s, self.on_shed = max_queue_s, on_shed
        self.tickets: set[Ticket] = set()  # requests let in whose units have not queued yet

    def expected_wait_s(self, cost_s: float) -> float:
        """Seconds of others' work a request of `cost_s` model seconds would wait for."""
        raise NotImplementedError

    def seconds(self, model_s: float) -> float:
        """Wall seconds for `model_s` of the cost model's seconds: at the measured speed, over the model threads."""
        return model_s * self.slowdown / self.concurrency

    def ticketed_s(self, cost_s: float) -> float:
        """The round-robin share of the tickets' work a request of `cost_s` would wait for."""
        return shared_ahead((t.cost_s for t in self.tickets), cost_s)

    def refusal(self, cost_s: float) -> str | None:
        """Why a request of `cost_s` arriving now is refused (and counted), or None when it is welcome: when the
        others' work it would wait for is over the budget, or over its own work if that is longer (a large
        request may take up to twice its own time, so two maximal requests can run side by side)."""
        wait = self.expected_wait_s(cost_s)
        if wait <= max(self.max_queue_s, self.seconds(cost_s)):
            return None
        if self.on_shed:
            self.on_shed()
        return (f"overloaded: about {wait:.1f} s of model work is queued ahead of this request "
                f"(budget {self.max_queue_s:.1f} s, SENPOS_MAX_QUEUE_MS); retry later")

    @contextmanager
    def admit(self, cost_s: float) -> Iterator[Ticket]:
        """`with queue.admit(cost) as ticket:` a refused ticket, or one holding `cost` model seconds until it is
        released or the block ends."""
        refusal = self.refusal(cost_s)
        ticket = Ticket(cost_s, refusal, None if refusal else self)
        if ticket.admission is not None:
            self.tickets.add(ticket)
        try:
            yield ticket
        finally:
            ticket.release()


class Queue(Protocol):
    """A model's queue as a request sees it: service.batching.Batcher (`single` layout) or
    service.split.client.RemoteQueue (`split`)."""

    def admit(self, cost_s: float) -> AbstractContextManager[Ticket]: ...

    def expected_wait_s(self, cost_s: float) -> float: ...

    async def run(self, units: Sequence[Unit], request: int | None = None) -> list[list]: ...


@dataclass(frozen=True)
class Door:
    """A route's door: `admit(content_length)` prices a body from its size, capped at the largest body the
    character limit allows (a character is at most 6 bytes of JSON, as a \\uXXXX escape)."""

    queue: Queue
    pricing: Callable[[], Pricing]
    limit_chars: int

    def admit(self, content_length: int) -> AbstractContextManager[Ticket]:
        return self.queue.admit(self.pricing().body(min(content_length, 6 * self.limit_chars)))
