"""senpos HTTP API: POST /sentiment and POST /pos-tag, with adaptive batching.

One service, `SENPOS_API_WORKERS` processes. In each, requests are validated (service/schemas.py) and then
batched (service/batching.py): whenever a model is free, the items of every queued request go to it in one
call, which tokenises them and runs them through onnxruntime in batches of similar length; each request gets
its own results back in order. When the queue ahead is longer than SENPOS_MAX_QUEUE_MS, a request is refused at
once with 503 and Retry-After instead of waiting.
Measured on this 2-core machine, one service beat a composition (API processes calling a separate batching
model service through `bentoml.depends`) by 1.9x: the extra HTTP hop per call cost more CPU than it saved.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable

import bentoml
from bentoml._internal.server.http.traffic import TimeoutMiddleware as BentoTimeoutMiddleware
from starlette.middleware import Middleware

from senpos.pos import PosTagger
from senpos.pos_tags import to_upos
from senpos.runtime import ModelLoadError
from senpos.sentiment import SentimentPredictor
from service.batching import Batcher
from service.middleware import (
    BodyLimitMiddleware,
    JsonOnlyMiddleware,
    RebalanceMiddleware,
    RetryAfterMiddleware,
    ShedLoadMiddleware,
    TimeoutMiddleware,
    docs_app,
)
from service.schemas import PosItems, Texts
from service.settings import SETTINGS

log = logging.getLogger("senpos")
# BentoML sets only its own loggers to INFO (the root stays at WARNING): without this, the lines that say which
# provider runs each model (senpos.runtime) and that the models loaded would never reach the server's log.
log.setLevel(logging.INFO)
BATCHERS: dict[str, Batcher] = {}  # route -> its batcher, in this worker process (read by ShedLoadMiddleware)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="senpos_batch_size", documentation="Items per model call (adaptive batching)", labelnames=["endpoint"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_WAIT = bentoml.metrics.Histogram(
    name="senpos_queue_wait_seconds", documentation="Time the oldest request of a batch waited for the model",
    labelnames=["endpoint"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
SHED = bentoml.metrics.Counter(
    name="senpos_shed_requests", documentation="Requests refused with 503 because the queue was full",
    labelnames=["endpoint"])


class QuietRefusals(logging.Filter):
    """Leave load-shedding answers (503, 429) out of the access log (SENPOS_ACCESS_LOG=1); /metrics counts them.
    Under overload a line per refusal costs more CPU than the refusal: at 1,500 req/s on 2 cores goodput was
    133 answers/s with every line logged, ~195 with refusals left out, 221-284 with no access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) == 4 and str(args[2]).startswith(("status=503", "status=429")))


logging.getLogger("bentoml.access").addFilter(QuietRefusals())


def check_models() -> None:
    """Load both models once in the `bentoml serve` process, before any worker starts, so a missing or
    corrupt file or a mismatched vocabulary stops the server at start, naming the file and the problem
    (a failing worker would otherwise be restarted forever)."""
    # On the CPU unless the GPU is required: then a CUDA that cannot start stops the server here too.
    provider = "cuda" if os.environ.get("SENPOS_PROVIDER", "").lower() == "cuda" else "cpu"
    try:
        SentimentPredictor(SETTINGS.sentiment_model, threads=1, provider=provider)
        PosTagger(SETTINGS.pos_model, threads=1, provider=provider)
    except ModelLoadError as e:
        raise SystemExit(f"senpos cannot start: {e}") from None


if bentoml.server_context.worker_index is None:  # the serving process itself, not one of its workers
    check_models()


_gc_started = 0.0


def _report_slow_collections(phase: str, info: dict) -> None:
    """Log a full garbage collection that stalled this worker (the GIL is held throughout) for over 50 ms: a
    latency spike that no request explains. This log found BentoML's timeout middleware keeping every request's
    objects alive for 60 s (middleware.TimeoutMiddleware): one such stall every 1-2 minutes per worker at 70%
    load, 88-156 ms; none in 3 minutes at the same load once it was replaced."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    elif info["generation"] == 2 and (paused := time.perf_counter() - _gc_started) > 0.05:
        log.warning("a full garbage collection stalled this worker for %.0f ms (%d objects collected)",
                    paused * 1000, info["collected"])


def _batcher(endpoint: str, fn: Callable[[list], list[dict]]) -> Batcher:
    def record(items: int, waited_s: float, _running_s: float) -> None:
        BATCH_SIZE.labels(endpoint=endpoint).observe(items)
        QUEUE_WAIT.labels(endpoint=endpoint).observe(waited_s)

    return Batcher(fn, SETTINGS.max_batch_size, SETTINGS.max_queue_ms / 1000, SETTINGS.model_calls,
                   on_batch=record, on_shed=SHED.labels(endpoint=endpoint).inc)



@bentoml.service(workers=SETTINGS.api_workers,
                 traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
                 logging={"access": {"enabled": SETTINGS.access_log}})
class Senpos:
    """English sentiment and Chinese POS tagging."""

    def __init__(self) -> None:
        threads = SETTINGS.model_threads
        self.english = SentimentPredictor(SETTINGS.sentiment_model, threads=threads, max_batch=SETTINGS.max_batch_size)
        self.chinese = PosTagger(SETTINGS.pos_model, threads=threads, max_batch=SETTINGS.max_batch_size)
        log.info("models loaded: sentiment on %s, pos on %s", self.english.provider, self.chinese.provider)
        self.english.predict(["warm-up review"] * 4)
        self.chinese.tag(["预热句子。", ["预热"]])
        self.sentiment_batcher = BATCHERS["/sentiment"] = _batcher("sentiment", self._sentiment)
        self.pos_batcher = BATCHERS["/pos-tag"] = _batcher("pos_tag", self._pos_tag)
        # The models' vocabularies and jieba's dictionary are ~230k long-lived objects; a full garbage collection
        # walked them all for ~110 ms with the GIL held, stalling the worker often enough under load to push its
        # queue over budget (29 sheds in a 10-min soak at 70%). Frozen, they are never walked again.
        gc.freeze()
        gc.callbacks.append(_report_slow_collections)
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.api(route="/sentiment")
    async def sentiment(self, texts: Texts) -> list[dict]:
        """P(positive) for each English text, in order: `{"label": "positive"|"negative", "score": p}`."""
        return await self.sentiment_batcher(texts)  # ShedLoadMiddleware let it in

    @bentoml.api(route="/pos-tag")
    async def pos_tag(self, texts: PosItems) -> list[dict]:
        """Words, PFR tags, Universal POS tags and [start, end) offsets for each item, in order."""
        return await self.pos_batcher(texts)

    def _sentiment(self, texts: list[str]) -> list[dict]:
        scores = self.english.predict(texts)
        return [{"label": "positive" if p >= 0.5 else "negative", "score": float(p)} for p in scores]

    def _pos_tag(self, items: list[str | list[str]]) -> list[dict]:
        return [{"words": r.words, "tags": r.tags, "upos": [to_upos(t) for t in r.tags],
                 "offsets": [list(o) for o in r.offsets]} for r in self.chinese.tag(items)]


Senpos.add_asgi_middleware(RebalanceMiddleware, every=SETTINGS.keepalive_requests)
Senpos.add_asgi_middleware(JsonOnlyMiddleware)
Senpos.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
Senpos.add_asgi_middleware(RetryAfterMiddleware, seconds=1)
Senpos.mount_asgi_app(docs_app(lambda: Senpos.openapi_spec), path="/docs", name="docs")
for _api in Senpos.apis.values():  # else BentoML rebuilds each output's JSON schema per response to find its
    _api.output_spec.media_type = "application/json"  # media type: 4% of the CPU under load (py-spy)


# Refusals go first, in front of BentoML's own middleware. BentoML 1.4 puts a service's middleware after its
# metrics, OpenTelemetry, timeout and concurrency layers, so every refusal paid for all of them, and under 4x
# overload on 2 cores that CPU is what made refusals slow: 40-s runs at 1,284 req/s, refusals p50 54-290 ms and
# p99 0.8-11.6 s, goodput 181-270/s; in front, p50 6-8 ms, p99 0.4-0.7 s, goodput 409-410/s. Wrapping the ASGI
# app BentoML hands to uvicorn (Service.to_asgi, what its worker calls) puts the check there. Refusals are then
# missing from BentoML's request metrics and counted in senpos_shed_requests_total; tests/test_overload.py checks.
_bentoml_to_asgi = bentoml.Service.to_asgi


def _to_asgi_shedding_first(self, is_main: bool = True):
    app = _bentoml_to_asgi(self, is_main)
    if self is not Senpos:
        return app
    # Starlette builds its middleware stack on the first request, from this list: swap in the timeout middleware
    # that cancels its timer (middleware.TimeoutMiddleware says why).
    app.user_middleware = [Middleware(TimeoutMiddleware, timeout=m.kwargs["timeout"])
                           if m.cls is BentoTimeoutMiddleware else m for m in app.user_middleware]
    return ShedLoadMiddleware(app, batchers=BATCHERS)


bentoml.Service.to_asgi = _to_asgi_shedding_first
