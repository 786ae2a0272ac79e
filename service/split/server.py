"""The model process of the `split` layout: one batching queue per model, fed by every API worker.

Each API worker keeps one connection (service/split/client.py). It sends units (`run`: model, request key,
price, packed items) and `cancel`s for units nobody waits for any more. Each answer carries the queue's state
(the work running, and its round-robin share at a few request costs), which the worker's door adds to its own
tickets. On connect the server says `hello`: each model's cost model and batch width, so the API workers
price units as this device runs them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from dataclasses import asdict

from service.admission import AHEAD_GRID_S, shared_ahead
from service.batching import Batcher, Job
from service.split.codecs import CODECS
from service.split.wire import WireError, frame, read_frame, start_server
from service.units import Pricing, Unit

log = logging.getLogger("senpos.split.server")


class ModelServer:
    def __init__(self, batchers: dict[str, Batcher], pricing: dict[str, Pricing], providers: dict[str, str]):
        self.batchers, self.pricing, self.providers = batchers, pricing, providers
        self._connections = itertools.count()

    async def start(self, address: str) -> asyncio.AbstractServer:
        return await start_server(self._serve, address)

    def hello(self) -> bytes:
        return frame({"op": "hello", "models": {
            m: {"cost": asdict(p.cost), "width": p.width, "concurrency": self.batchers[m].concurrency,
                "provider": self.providers[m]}
            for m, p in self.pricing.items()}})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._connections)
        pending: dict[int, tuple[str, Job]] = {}  # unit id -> (model, job)
        writer.write(self.hello())
        try:
            while True:
                header, arrays = await read_frame(reader)
                if header.get("op") == "run":
                    model = header["model"]
                    unit = Unit(CODECS[model].unpack_items(arrays), float(header["cost"]))
                    (job,) = self.batchers[model].submit([unit], (connection, header["req"]))
                    pending[header["id"]] = (model, job)
                    job.future.add_done_callback(functools.partial(self._answer, writer, pending, header["id"], model))
                elif header.get("op") == "cancel":
                    for uid in header["ids"]:
                        if uid in pending:
                            model, job = pending.pop(uid)
                            self.batchers[model].drop([job])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the API worker went away
        except (WireError, KeyError, ValueError) as e:
            log.error("closing a connection that sent a malformed frame: %s", e)
        finally:
            self._drop_all(pending)
            writer.close()

    def _drop_all(self, pending: dict[int, tuple[str, Job]]) -> None:
        for model, job in pending.values():
            self.batchers[model].drop([job])
        pending.clear()

    def _answer(self, writer: asyncio.StreamWriter, pending: dict, uid: int, model: str, fut: asyncio.Future) -> None:
        pending.pop(uid, None)
        if fut.cancelled() or writer.is_closing():
            return
        batcher = self.batchers[model]
        state = {"id": uid, "running": batcher.running_s, "slowdown": batcher.slowdown,
                 "ahead": [shared_ahead(batcher.request_s.values(), c) for c in AHEAD_GRID_S]}
        if (error := fut.exception()) is not None:
            writer.write(frame({**state, "error": f"{type(error).__name__}: {error}"}))
        else:
            writer.write(frame(state, CODECS[model].pack_results(fut.result())))
