"""An API worker's side of the `split` layout: one connection to the model process, a `RemoteQueue` per model.

Units go out as they are ready and come back by id, so every request of this worker shares the connection.
A unit whose caller went away (timeout, disconnect) is cancelled on the server, which never runs it if it is
still queued. If the model process is gone, pending requests fail with 503 and the next request reconnects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from http import HTTPStatus

from bentoml.exceptions import BentoMLException

from senpos.runtime import BatchCost
from service.admission import AHEAD_GRID_S, Admission, ahead_at, shared_ahead
from service.split.codecs import CODECS
from service.split.wire import frame, open_connection, read_frame
from service.units import BYTES_PER_STEP, Pricing, Unit

log = logging.getLogger("senpos.split.client")


HELLO_TIMEOUT_S = 5.0  # a model process that accepted the connection but is busy gets longer to say hello


class ModelServerUnavailable(BentoMLException):
    error_code = HTTPStatus.SERVICE_UNAVAILABLE


class ModelClient:
    def __init__(self, address: str, max_queue_s: float, on_shed: dict | None = None):
        self.address = address
        self.queues = {m: RemoteQueue(self, m, max_queue_s, (on_shed or {}).get(m)) for m in CODECS}
        self.pricing: dict[str, Pricing] = {}
        self.providers: dict[str, str] = {}  # model -> onnxruntime provider in the model process
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[str, asyncio.Future]] = {}
        self._ids = itertools.count()
        self._connecting: asyncio.Future | None = None
        self._reader: asyncio.Future | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout_s: float = 1.0) -> None:
        """Connect (once, shared by concurrent callers) and read the server's hello. `timeout_s` bounds how long
        requests wait for a model process that went away without a word (its host gone: no refusal comes back)
        before they are answered 503; between machines on one network a connection takes milliseconds."""
        if self.connected:
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect(timeout_s))
        await asyncio.shield(self._connecting)

    async def _connect(self, timeout_s: float) -> None:
        try:
            reader, writer = await asyncio.wait_for(open_connection(self.address), timeout_s)
            header, _ = await asyncio.wait_for(read_frame(reader), max(timeout_s, HELLO_TIMEOUT_S))
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
            raise ModelServerUnavailable(f"the model server at {self.address} is not reachable ({e!r}); "
                                         "retry later") from None
        self.pricing = {m: Pricing(BatchCost(**h["cost"]), int(h["width"]), BYTES_PER_STEP[m])
                        for m, h in header["models"].items()}
        for m, h in header["models"].items():
            self.queues[m].concurrency = int(h["concurrency"])
            self.providers[m] = str(h.get("provider", "unknown"))
        self._writer = writer
        self._reader = asyncio.ensure_future(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header, arrays = await read_frame(reader)
                entry = self._pending.pop(header["id"], None)
                if entry is None:
                    continue
                model, future = entry
                queue = self.queues[model]
                queue.server_running_s, queue.server_ahead = float(header["running"]), header["ahead"]
                queue.slowdown = float(header["slowdown"])
                if future.done():
                    continue
                if "error" in header:
                    future.set_exception(RuntimeError(f"model server: {header['error']}"))
                else:
                    future.set_result(CODECS[model].unpack_results(arrays))
        except Exception as e:  # the connection is gone: every pending unit fails, the next request reconnects
            log.warning("lost the model server connection (%s: %s)", type(e).__name__, e)
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for _model, future in self._pending.values():
                if not future.done():
                    future.set_exception(ModelServerUnavailable("the model server went away; retry later"))
            self._pending.clear()

    def send(self, model: str, request: int, units: Sequence[Unit]) -> list[tuple[int, asyncio.Future]]:
        loop, sent, writer = asyncio.get_running_loop(), [], self._writer
        if writer is None or writer.is_closing():  # lost between run()'s connect() and now
            raise ModelServerUnavailable("the model server went away; retry later")
        for unit in units:
            uid = next(self._ids)
            future = loop.create_future()
            self._pending[uid] = (model, future)
            writer.write(frame({"op": "run", "id": uid, "model": model, "req": request, "cost": unit.cost_s},
                                     CODECS[model].pack_items(unit.items)))
            sent.append((uid, future))
        return sent

    def cancel(self, uids: list[int]) -> None:
        for uid in uids:
            self._pending.pop(uid, None)
        writer = self._writer
        if uids and writer is not None and not writer.is_closing():  # self.connected
            writer.write(frame({"op": "cancel", "ids": uids}))


class RemoteQueue(Admission):
    """A model's queue in the model process, as this worker sees it: what the server last reported (running,
    and the round-robin share of its queue at a few request costs), or this worker's own units still out when
    more, plus the tickets of requests let in here and not yet sent."""

    def __init__(self, client: ModelClient, model: str, max_queue_s: float, on_shed=None):
        super().__init__(max_queue_s, on_shed)
        self.client, self.model = client, model
        self.server_running_s, self.server_ahead = 0.0, [0.0] * len(AHEAD_GRID_S)
        self.outstanding: dict[int, float] = {}  # this worker's requests -> model seconds of their units out
        self.slowdown, self.concurrency = 1.0, 1
        self._requests = itertools.count()

    def expected_wait_s(self, cost_s: float) -> float:
        server = self.server_running_s + ahead_at(self.server_ahead, cost_s)
        ahead = max(server, shared_ahead(self.outstanding.values(), cost_s))
        return self.seconds(ahead + self.ticketed_s(cost_s))

    async def run(self, units: Sequence[Unit], request: int | None = None) -> list[list]:
        await self.client.connect()
        request = next(self._requests) if request is None else request
        sent = self.client.send(self.model, request, units)
        cost = sum(u.cost_s for u in units)
        self.outstanding[request] = self.outstanding.get(request, 0.0) + cost
        try:
            return list(await asyncio.gather(*(f for _, f in sent)))
        finally:
            left = self.outstanding.pop(request, 0.0) - cost
            if left > 1e-12:
                self.outstanding[request] = left
            self.client.cancel([uid for uid, f in sent if f.cancelled() or not f.done()])
