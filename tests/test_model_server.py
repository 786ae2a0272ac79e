"""The split layout's transport, in process: frames, codecs, a model server and its clients on a real socket."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from senpos.runtime import BatchCost
from service.batching import Batcher
from service.split.client import ModelClient, ModelServerUnavailable
from service.split.codecs import CODECS
from service.split.server import ModelServer
from service.split.wire import WireError, frame, parse_address, read_frame
from service.units import Pricing, Unit, cut


def test_frames_round_trip_arrays_without_pickle():
    arrays = [np.arange(6, dtype=np.int32).reshape(2, 3), np.array([0.5, 1.5], dtype=np.float32)]

    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(frame({"op": "x", "id": 7}, arrays))
        reader.feed_eof()
        return await read_frame(reader)

    header, got = asyncio.run(go())
    assert header == {"op": "x", "id": 7}
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, got, strict=True))


def test_a_frame_naming_another_dtype_is_refused():
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(frame({}, [np.zeros(2, dtype=np.float64)]))
        reader.feed_eof()
        return await read_frame(reader)

    with pytest.raises(WireError, match="dtype"):
        asyncio.run(go())


def test_addresses():
    assert parse_address("unix:///tmp/x.sock") == ("unix", "/tmp/x.sock")
    assert parse_address("tcp://models:7000") == ("tcp", "models:7000")
    with pytest.raises(ValueError):
        parse_address("models:7000")


def test_codecs_round_trip():
    seqs = [np.array([3, 4, 5]), np.array([7])]
    back = CODECS["sentiment"].unpack_items(CODECS["sentiment"].pack_items(seqs))
    assert [a.tolist() for a in back] == [[3, 4, 5], [7]]
    pieces = [(np.array([1, 2]), np.array([[1, 0], [2, 3]]), np.array([0, 5])),
              (np.array([9]), np.array([[4]]), np.array([1]))]
    back = CODECS["pos"].unpack_items(CODECS["pos"].pack_items(pieces))
    assert [w.tolist() for w, _, _ in back] == [[1, 2], [9]] and back[1][1].tolist() == [[4, 0]]
    scores = [np.ones((2, 3), dtype=np.float32), np.zeros((1, 3), dtype=np.float32)]
    assert [s.shape for s in CODECS["pos"].unpack_results(CODECS["pos"].pack_results(scores))] == [(2, 3), (1, 3)]


def test_units_are_bounded_in_rows_and_model_time():
    cost = BatchCost(step=0.001, row_step=0.001, call=0.0)
    units = cut(list(range(40)), [10] * 40, cost, width=8)  # 0.01125 s a row: 4 rows a unit (0.05 s)
    assert [len(u.items) for u in units] == [4] * 10
    assert sum(u.cost_s for u in units) == pytest.approx(40 * 10 * (0.001 + 0.001 / 8))


@pytest.fixture
def address(tmp_path):
    return f"unix://{tmp_path}/models.sock"


def serve(address: str, seconds_per_item: float = 0.0, gate: threading.Event | None = None):
    """A model server whose model records each call's items (the first number of each) and, given a `gate`,
    holds every call until the gate opens, so a test can arrange the queue while a call is known to run."""
    calls: list[list[int]] = []

    def model(seqs):
        calls.append([int(s[0]) for s in seqs])
        if gate is not None:
            gate.wait(30)  # a bound for a broken test only: the test opens the gate
        time.sleep(seconds_per_item * len(seqs))
        return [float(s.sum()) for s in seqs], seconds_per_item * len(seqs)

    batcher = Batcher(model, max_batch_items=64, max_queue_s=0.2, costed=True)  # calls of <= 0.05 s
    pricing = {"sentiment": Pricing(BatchCost(0.0, 0.001, 0.0), 8), "pos": Pricing(BatchCost(0.0, 0.001, 0.0), 8)}
    providers = dict.fromkeys(pricing, "CPUExecutionProvider")
    return ModelServer({"sentiment": batcher, "pos": batcher}, pricing, providers), calls


async def until(condition, timeout_s: float = 30.0) -> None:
    """Wait on the loop until `condition()` holds; the timeout only bounds how long a broken behaviour takes to
    fail, it is no claim about speed."""

    async def poll():
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


def test_units_from_several_clients_share_one_queue_and_come_back_in_order(address):
    gate = threading.Event()

    async def go():
        server, calls = serve(address, gate=gate)
        queue = server.batchers["sentiment"]
        listener = await server.start(address)
        clients = [ModelClient(address, max_queue_s=10) for _ in range(4)]

        async def one(client, i):
            units = [Unit([np.array([i, k])], 0.001) for k in range(3)]
            return await client.queues["sentiment"].run(units)

        answering = asyncio.gather(*(one(clients[i % 4], i) for i in range(40)))
        try:  # every unit of the 4 clients reaches the server while its first call runs
            await until(lambda: sum(len(c) for c in calls) + queue.queued_units == 120)
        finally:
            gate.set()
        answers = await answering
        listener.close()
        return answers, calls, clients[0].pricing

    answers, calls, pricing = asyncio.run(go())
    assert answers == [[[float(i)], [float(i + 1)], [float(i + 2)]] for i in range(40)]
    # Units of different clients (request i comes from client i % 4) were joined into one model call.
    assert any(len({i % 4 for i in call}) > 1 for call in calls), calls
    assert pricing["sentiment"].cost.row_step == 0.001  # the server's cost model, from its hello


def test_a_cancelled_request_is_dropped_on_the_server(address):
    """The client cancels while the server runs the request's first call: its other units leave the server's
    queue unrun (the server never runs more than the call already under way)."""
    gate = threading.Event()

    async def go():
        server, calls = serve(address, gate=gate)
        listener = await server.start(address)
        client = ModelClient(address, max_queue_s=10)
        queue = server.batchers["sentiment"]
        task = asyncio.ensure_future(client.queues["sentiment"].run([Unit([np.array([1])], 0.02)] * 20))
        try:
            await until(lambda: sum(len(c) for c in calls) + queue.queued_units == 20)  # all 20 on the server
            task.cancel()
            await until(lambda: queue.queued_units == 0)  # the cancel reached the server, which dropped them
        finally:
            gate.set()
        await until(lambda: queue.running_s < 1e-9)  # the call under way has ended
        listener.close()
        return calls, queue.queued_units

    calls, left = asyncio.run(go())
    assert len(calls) == 1 and len(calls[0]) < 20 and left == 0, calls


def test_a_missing_model_server_is_a_503_not_a_hang(address):
    async def go():
        client = ModelClient(address, max_queue_s=10)
        await client.queues["sentiment"].run([Unit([np.array([1])], 0.0)])

    with pytest.raises(ModelServerUnavailable) as info:
        asyncio.run(asyncio.wait_for(go(), 10))
    assert info.value.error_code == 503


def test_a_connection_lost_before_sending_is_a_503():
    """A connection that drops between a request's connect and its send is the model server gone (503), not a
    crash of the API worker's code (500)."""
    client = ModelClient("unix:///nonexistent.sock", max_queue_s=10)

    async def go():
        client.send("sentiment", 0, [Unit([np.array([1])], 0.0)])

    with pytest.raises(ModelServerUnavailable) as info:
        asyncio.run(go())
    assert info.value.error_code == 503 and not client._pending
