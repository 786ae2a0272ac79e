"""Unit tests of the serving engine's parts: provider choice, length bucketing/padding, ASGI middleware."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from senpos.runtime import (
    CPU,
    CUDA,
    BatchCost,
    ModelLoadError,
    choose_providers,
    gpu_visible,
    measure_cost,
    plan_batches,
)
from senpos.sentiment import SentimentPredictor
from service.middleware import BodyLimitMiddleware, RetryAfterMiddleware

MODEL = Path(__file__).resolve().parents[1] / "models" / "sentiment"


@pytest.mark.parametrize("available,want,gpu,expected", [
    ([CUDA, CPU], "auto", True, [CUDA, CPU]),
    ([CUDA, CPU], "auto", False, [CPU]),  # onnxruntime-gpu installed, but no GPU visible
    ([CPU], "auto", True, [CPU]),  # a GPU, but the CPU-only onnxruntime
    ([CUDA, CPU], "cpu", True, [CPU]),
    (["TensorrtExecutionProvider", CUDA, CPU], "cuda", True, [CUDA, CPU]),
])
def test_choose_providers(available, want, gpu, expected):
    assert choose_providers(available, want, has_gpu=gpu) == expected


def test_choose_providers_refuses_impossible_requests():
    with pytest.raises(ModelLoadError, match="CUDA cannot run"):
        choose_providers([CPU], "cuda", has_gpu=False)
    with pytest.raises(ValueError, match="SENPOS_PROVIDER"):
        choose_providers([CPU], "tpu")


def test_gpu_visible_respects_cuda_visible_devices(tmp_path):
    (tmp_path / "nvidia0").touch()
    assert gpu_visible({}, dev=str(tmp_path))
    assert not gpu_visible({"CUDA_VISIBLE_DEVICES": ""}, dev=str(tmp_path))
    assert not gpu_visible({"CUDA_VISIBLE_DEVICES": "-1"}, dev=str(tmp_path))
    assert not gpu_visible({}, dev=str(tmp_path / "nothing"))


def test_plan_batches_when_calls_are_expensive_sorts_and_fills_batches():
    gpu_like = BatchCost(step=1.0, row_step=0.0, call=1.0)  # a row more is free: only calls and steps cost
    lengths = [5, 1, 9, 3, 7, 2]
    # Two calls are the fewest for 6 rows of at most 4; the long call pays 9 steps, so the short one
    # takes as many of the shortest rows as fit: 2 + 9 steps + 2 calls.
    assert plan_batches(lengths, 4, gpu_like) == [[1, 5], [3, 0, 4, 2]]


def test_plan_batches_keeps_short_items_out_of_long_batches():
    cpu_like = BatchCost(step=1.0, row_step=1.0, call=0.0)  # padding a short row to a long one costs
    lengths = [10, 400, 10, 400, 10]
    assert plan_batches(lengths, 64, cpu_like) == [[0, 2, 4], [1, 3]]


def test_plan_batches_respects_the_widest_efficient_batch():
    cost = BatchCost(step=1.0, row_step=0.0, call=0.0, max_rows=2)
    assert [len(b) for b in plan_batches([7] * 5, 64, cost)] in ([1, 2, 2], [2, 1, 2], [2, 2, 1])
    assert plan_batches([], 8, cost) == []


class FakeClock:
    """senpos.runtime's clock, advanced only by the fake model runs: the cost they take is exact on any machine
    (a sleep on a loaded one lasts longer than asked)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    import senpos.runtime

    fake = FakeClock()
    monkeypatch.setattr(senpos.runtime, "time", fake)
    return fake


def test_measure_cost_recovers_a_known_cost(clock):
    def fake_run(n: int, length: int) -> None:  # 20 us per step + 10 us per row-step + 1 ms per call
        clock.now += length * (20e-6 + 10e-6 * n) + 1e-3

    cost = measure_cost(fake_run, repeats=2)
    assert cost.step == pytest.approx(20e-6) and cost.row_step == pytest.approx(10e-6)
    assert cost.call == pytest.approx(1e-3)


def test_measure_cost_tries_widths_up_to_max_rows(clock):
    def gpu_like(n: int, length: int) -> None:  # every row rides along for free: wider is always cheaper per row
        clock.now += length * 20e-6 + 1e-3

    assert measure_cost(gpu_like, max_rows=256, repeats=1).max_rows == 256
    assert measure_cost(gpu_like, repeats=1).max_rows == 64  # the CPU default stops at 64


def test_preload_cuda_runs_once_and_never_raises(monkeypatch):
    import senpos.runtime as runtime

    calls = []

    class FakeOrt:
        @staticmethod
        def preload_dlls():
            calls.append(1)
            raise RuntimeError("Invalid parameter of directory")

    monkeypatch.setattr(runtime, "_cuda_preloaded", False)
    runtime.preload_cuda(FakeOrt)
    runtime.preload_cuda(FakeOrt)
    assert calls == [1]
    monkeypatch.setattr(runtime, "_cuda_preloaded", False)
    runtime.preload_cuda(object())  # an onnxruntime without preload_dlls (older, or the CPU build) is fine


def test_a_required_gpu_that_falls_back_is_an_error(monkeypatch, caplog):
    """onnxruntime falls back to the CPU when the CUDA provider cannot start (here: the CPU build, told to use it);
    SENPOS_PROVIDER=cuda must then fail at load, and auto must say so in the log."""
    import onnxruntime

    import senpos.runtime as runtime

    asked, real = [], onnxruntime.InferenceSession

    def recording_session(*args, providers, **kwargs):
        asked.append(providers)
        return real(*args, providers=providers, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording_session)
    monkeypatch.setattr(runtime, "choose_providers", lambda available, want: [CUDA, CPU])
    monkeypatch.setattr(runtime, "preload_cuda", lambda ort: None)
    with pytest.raises(ModelLoadError, match="could not start CUDA"):
        runtime.make_session(MODEL / "model.onnx", threads=1, want="cuda")
    # The settings the H200 run chose: cuDNN's heuristic (2.4x the tagger's throughput over exhaustive search on
    # real sentences) and no TF32 (with it, CUDA differed from the CPU by 5e-3; without, 1e-5).
    assert asked[0][0] == (CUDA, {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"})
    with caplog.at_level("WARNING", logger="senpos.runtime"):
        session = runtime.make_session(MODEL / "model.onnx", threads=1, want="auto")
    assert session.get_providers() == [CPU] and "fell back to CPUExecutionProvider" in caplog.text


class RecordingSession:
    """Wraps the real onnxruntime session and records the shapes it is given."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, outputs, feeds):
        self.shapes.append(feeds["ids"].shape)
        return self.session.run(outputs, feeds)


def test_predictor_pads_each_bucket_only_to_its_longest():
    predictor = SentimentPredictor(MODEL, threads=1, max_batch=2)
    seqs = [np.arange(2, 2 + n, dtype=np.int64) for n in (3, 50, 4, 48, 400)]
    recorder = RecordingSession(predictor.session)
    predictor.session = recorder
    scores = predictor.predict_ids(seqs)
    assert recorder.shapes == [(2, 4), (2, 50), (1, 400)]
    predictor.session = recorder.session
    alone = np.array([predictor.predict_ids([s])[0] for s in seqs])
    assert np.abs(scores - alone).max() <= 1e-5  # and results come back in input order


async def _call(app, body: bytes, headers: list[tuple[bytes, bytes]]):
    sent, chunks = [], [body[i : i + 1000] for i in range(0, len(body), 1000)] or [b""]

    async def receive():
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/x", "headers": headers}, receive, send)
    return sent


async def _echo_app(scope, receive, send):
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_body_limit_by_header_and_by_stream():
    app = BodyLimitMiddleware(_echo_app, max_bytes=5000)
    ok = asyncio.run(_call(app, b"a" * 4000, []))
    assert ok[0]["status"] == 200 and ok[1]["body"] == b"a" * 4000
    declared = asyncio.run(_call(app, b"a" * 10, [(b"content-length", b"999999")]))
    assert declared[0]["status"] == 413
    streamed = asyncio.run(_call(app, b"a" * 6000, []))  # chunked, no Content-Length
    assert streamed[0]["status"] == 413 and b"SENPOS_MAX_BODY_BYTES" in streamed[1]["body"]


@pytest.mark.parametrize("status,retry", [(503, True), (429, True), (200, False), (400, False)])
def test_retry_after_on_load_shedding(status, retry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"2"), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = asyncio.run(_call(RetryAfterMiddleware(app, seconds=1), b"", []))
    assert ((b"retry-after", b"1") in sent[0]["headers"]) is retry
    body = b"".join(m.get("body", b"") for m in sent[1:])
    length = dict(sent[0]["headers"])[b"content-length"]
    assert int(length) == len(body)
    assert (b"retry" in body) is (status == 503)




def test_a_slow_full_collection_is_logged(monkeypatch, caplog):
    import service.memory as svc

    monkeypatch.setattr(svc, "_gc_started", 0.0)  # a collection that started long ago
    with caplog.at_level("WARNING", logger="senpos"):
        svc._report_slow_collections("stop", {"generation": 1, "collected": 5})
        assert "garbage collection" not in caplog.text  # young generations are not reported
        svc._report_slow_collections("stop", {"generation": 2, "collected": 5})
    assert "a full garbage collection stalled this worker" in caplog.text


def test_timeout_middleware_cancels_its_timer_once_answered(monkeypatch):
    """BentoML's leaves the timer (and the request's context) alive for the whole timeout after the answer."""
    from service.middleware import TimeoutMiddleware

    timers = []

    async def fast(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def app(scope, receive, send):  # the middleware schedules its timer before calling `fast`
        loop = asyncio.get_running_loop()
        real = loop.call_later

        def recording(*args):
            timers.append(real(*args))
            return timers[-1]

        monkeypatch.setattr(loop, "call_later", recording, raising=False)
        await TimeoutMiddleware(fast, timeout=60)(scope, receive, send)

    sent = asyncio.run(_call(app, b"", []))
    assert sent[0]["status"] == 200 and timers and all(t.cancelled() for t in timers)


def test_timeout_middleware_answers_504_when_nothing_started_in_time():
    from service.middleware import TimeoutMiddleware

    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    sent = asyncio.run(_call(TimeoutMiddleware(slow, timeout=0.05), b"", []))
    assert sent[0]["status"] == 504 and b"0.05 seconds" in sent[1]["body"]

