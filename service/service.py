"""senpos HTTP API: POST /sentiment and POST /pos-tag, with adaptive batching in one queue per model.

`SENPOS_API_WORKERS` processes validate, tokenise and decode (service/pipeline.py). The model work goes to a
batching queue per model (service/batching.py): in each API worker (`SENPOS_LAYOUT=single`), or in one model
process, `SenposModels`, that every API worker feeds (`split`; the default on CUDA, where a GPU needs large
batches from all workers). A request whose queue is over its budget is refused at once (503, Retry-After).
docs/design.md says why each piece is built the way it is.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import bentoml
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

import senpos
from senpos.identity import model_identity
from senpos.pos import PosTagger
from senpos.runtime import ModelLoadError
from senpos.sentiment import SentimentPredictor
from service.access import AccessMiddleware
from service.batching import Batcher
from service.bentoml_seam import (
    add_route,
    describe_openapi,
    on_invalid_input,
    plain_json_outputs,
    put_in_front,
    serve_docs,
)
from service.errors import KnownRoutes, invalid_input
from service.middleware import (
    BodyLimitMiddleware,
    JsonOnlyMiddleware,
    RebalanceMiddleware,
    RetryAfterMiddleware,
    ShedLoadMiddleware,
)
from service.model_client import ModelClient
from service.model_server import ModelServer
from service.model_store import declared_models
from service.openapi import describe
from service.page import page_app
from service.pipeline import Pipeline, Queue
from service.schemas import PosItems, PosResult, SentimentResult, Texts, json_response
from service.settings import SETTINGS
from service.units import BYTES_PER_STEP, Pricing

log = logging.getLogger("senpos")
# BentoML sets only its own loggers to INFO: without this, which provider runs each model would never be logged.
log.setLevel(logging.INFO)
LAYOUT = SETTINGS.resolved_layout()
DOORS: dict[str, Callable] = {}  # route -> admit(content_length), in this worker (read by ShedLoadMiddleware)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="senpos_batch_size", documentation="Items per model call (adaptive batching)", labelnames=["endpoint"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_WAIT = bentoml.metrics.Histogram(
    name="senpos_queue_wait_seconds", documentation="Time the oldest unit of a batch waited for the model",
    labelnames=["endpoint"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
SHED = bentoml.metrics.Counter(
    name="senpos_shed_requests", documentation="Requests refused with 503 because the queue was full",
    labelnames=["endpoint"])
DROPPED = bentoml.metrics.Counter(
    name="senpos_dropped_units", documentation="Units of work dropped unrun: their request timed out or its "
    "client went away", labelnames=["endpoint"])
MODEL_INFO = bentoml.metrics.Gauge(
    name="senpos_model_info", documentation="The models this worker serves (always 1; the labels say which)",
    labelnames=["model", "name", "version", "sha256", "provider"])
ENDPOINTS = {"sentiment": "sentiment", "pos": "pos_tag"}  # model -> the endpoint label its metrics carry
LIMITS = SETTINGS.max_request_chars  # model -> characters per request


class QuietRefusals(logging.Filter):
    """Leave load-shedding answers (503, 429) out of the access log (SENPOS_ACCESS_LOG=1); /metrics counts them:
    under overload a line per refusal costs more CPU than the refusal."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) == 4 and str(args[2]).startswith(("status=503", "status=429")))


logging.getLogger("bentoml.access").addFilter(QuietRefusals())


def load_models(provider: str = SETTINGS.provider, threads: int = SETTINGS.model_threads):
    return (SentimentPredictor(SETTINGS.sentiment_model, threads=threads, provider=provider,
                               max_batch=SETTINGS.max_batch_size),
            PosTagger(SETTINGS.pos_model, threads=threads, provider=provider, max_batch=SETTINGS.max_batch_size))


def check_models() -> None:
    """Load both models once in the `bentoml serve` process, before any worker starts, so a missing or corrupt
    file or a mismatched vocabulary stops the server at start, naming the file (a failing worker would
    otherwise be restarted forever). On the CPU unless the GPU is required: then a CUDA that cannot start stops
    the server here too."""
    try:
        load_models(provider="cuda" if SETTINGS.provider == "cuda" else "cpu", threads=1)
    except ModelLoadError as e:
        raise SystemExit(f"senpos cannot start: {e}") from None


if bentoml.server_context.worker_index is None:  # the serving process itself, not one of its workers
    check_models()


def model_queues(english: SentimentPredictor, chinese: PosTagger) -> tuple[dict[str, Batcher], dict[str, Pricing]]:
    """One batching queue per model, running these predictors' model calls."""

    def batcher(model: str, fn: Callable[[list], tuple[Any, float]]) -> Batcher:
        endpoint = ENDPOINTS[model]

        def record(items: int, waited_s: float, _running_s: float) -> None:
            BATCH_SIZE.labels(endpoint=endpoint).observe(items)
            QUEUE_WAIT.labels(endpoint=endpoint).observe(waited_s)

        return Batcher(fn, SETTINGS.max_batch_size, SETTINGS.max_queue_ms / 1000, SETTINGS.model_calls,
                       costed=True, on_batch=record, on_shed=SHED.labels(endpoint=endpoint).inc,
                       on_drop=DROPPED.labels(endpoint=endpoint).inc)

    queues = {"sentiment": batcher("sentiment", english.predict_ids_costed),
              "pos": batcher("pos", chinese.scores_pieces_costed)}
    pricing = {m: Pricing(p.cost, min(SETTINGS.max_batch_size, p.cost.max_rows), BYTES_PER_STEP[m])
               for m, p in (("sentiment", english), ("pos", chinese))}
    return queues, pricing


def warm_up(english: SentimentPredictor, chinese: PosTagger) -> None:
    english.predict(["warm-up review"] * 4)
    chinese.tag(["预热句子。", ["预热"]])


def freeze_long_lived_objects() -> None:
    """The vocabularies and jieba's dictionary are ~230k long-lived objects that every full garbage collection
    would walk with the GIL held; frozen, they are never walked again."""
    gc.freeze()
    gc.callbacks.append(_report_slow_collections)


_gc_started = 0.0


def _report_slow_collections(phase: str, info: dict) -> None:
    """Log a full garbage collection that stalled this process for over 50 ms: a latency spike no request explains."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    elif info["generation"] == 2 and (paused := time.perf_counter() - _gc_started) > 0.05:
        log.warning("a full garbage collection stalled this worker for %.0f ms (%d objects collected)",
                    paused * 1000, info["collected"])


@bentoml.service(workers=1, traffic={"timeout": SETTINGS.timeout_s})
class SenposModels:
    """The `split` layout's model process: both models and their batching queues, fed by every API worker over
    SENPOS_MODEL_ADDRESS (service/model_server.py)."""

    stored_sentiment, stored_pos = declared_models(SETTINGS.store_tags)  # the store's models: a Bento carries them

    def __init__(self) -> None:
        english, chinese = load_models()
        log.info("model process: sentiment on %s, pos on %s", english.provider, chinese.provider)
        warm_up(english, chinese)
        self.batchers, pricing = model_queues(english, chinese)
        self.server = ModelServer(self.batchers, pricing, {"sentiment": english.provider, "pos": chinese.provider})
        freeze_long_lived_objects()

    @bentoml.on_startup
    async def listen(self) -> None:
        address = SETTINGS.resolved_model_address()
        self.listener = await self.server.start(address)
        log.info("model process listening on %s", address)

    @bentoml.api
    def queues(self) -> dict:
        """Each model queue's state: units queued, their model seconds, slowdown against the cost model."""
        return {m: {"units": q.queued_units, "queued_s": q.queued_s, "running_s": q.running_s, "slowdown": q.slowdown}
                for m, q in self.batchers.items()}


@bentoml.service(workers=SETTINGS.api_workers,
                 traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
                 logging={"access": {"enabled": SETTINGS.access_log}})
class Senpos:
    """English sentiment and Chinese POS tagging."""

    stored_sentiment, stored_pos = declared_models(SETTINGS.store_tags)  # the store's models: a Bento carries them
    if LAYOUT == "split" and not SETTINGS.model_address:
        models = bentoml.depends(SenposModels)  # started beside the API workers by `bentoml serve`

    def __init__(self) -> None:
        self.client: ModelClient | None
        queues: Mapping[str, Queue]
        if LAYOUT == "split":  # the models' sessions run in the model process; here only for tokenising
            english, chinese = load_models(provider="cpu", threads=1)
            english.encode_many(["warm-up review"])  # spaCy's tokenizer loads on first use
            chinese.pieces(chinese.encode(chinese.segment("预热句子。")[0]))
            self.client = client = ModelClient(SETTINGS.resolved_model_address(), SETTINGS.max_queue_ms / 1000,
                                               {m: SHED.labels(endpoint=e).inc for m, e in ENDPOINTS.items()})
            queues, pricing = client.queues, lambda m: client.pricing[m]
            self.providers = lambda: client.providers
        else:
            english, chinese = load_models()
            log.info("models loaded: sentiment on %s, pos on %s", english.provider, chinese.provider)
            warm_up(english, chinese)
            self.client = None
            queues, prices = model_queues(english, chinese)
            pricing = prices.__getitem__
            self.providers = lambda: {"sentiment": english.provider, "pos": chinese.provider}
        self.pipeline = Pipeline(english, chinese, queues, pricing)
        self.model_dirs = {"sentiment": english.model_dir, "pos": chinese.model_dir}
        DOORS["/sentiment"] = door(queues["sentiment"], lambda: pricing("sentiment"), LIMITS["sentiment"])
        DOORS["/pos-tag"] = door(queues["pos"], lambda: pricing("pos"), LIMITS["pos"])
        freeze_long_lived_objects()

    @bentoml.on_startup
    async def connect(self) -> None:
        """Split layout: reach the model process (it may still be loading) before saying ready."""
        deadline = time.monotonic() + 300
        while self.client is not None and not self.client.connected:
            try:
                await self.client.connect()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        for model, info in self.info()["models"].items():
            MODEL_INFO.labels(model=model, **{k: info[k] for k in ("name", "version", "sha256", "provider")}).set(1)

    def info(self) -> dict:
        """What GET /info says: this version, and each model's identity, headline metrics and provider."""
        providers = self.providers()
        return {"version": senpos.__version__,
                "models": {m: {**model_identity(m, d), "provider": providers.get(m, "unknown")}
                           for m, d in self.model_dirs.items()}}

    async def __is_ready__(self) -> bool:
        """Split layout: ready while the model process can be reached (a probe reconnects a worker that lost it)."""
        if self.client is None:
            return True
        try:
            await self.client.connect(timeout_s=2)
        except Exception:
            return False
        return True

    @bentoml.api(route="/sentiment")
    async def sentiment(self, texts: Texts) -> list[SentimentResult]:
        """P(positive) for each English text, in order: `{"label": "positive"|"negative", "score": p}`."""
        # The annotation is the OpenAPI schema's; the answer is a ready Response (its JSON, or a 413).
        return too_large(texts, "sentiment") or json_response(await self.pipeline.sentiment(texts))  # type: ignore[return-value]

    @bentoml.api(route="/pos-tag")
    async def pos_tag(self, texts: PosItems) -> list[PosResult]:
        """Words, PFR tags, Universal POS tags and [start, end) offsets for each item, in order."""
        return too_large(texts, "pos") or json_response(await self.pipeline.pos_tag(texts))  # type: ignore[return-value]


def door(queue, price: Callable[[], Pricing], limit_chars: int) -> Callable[[int], Any]:
    """admit(content_length) for ShedLoadMiddleware: a body's reservation is priced from its size, capped at the
    largest body the character limit allows (a character is at most 6 bytes of JSON, as a \\uXXXX escape)."""
    return lambda length: queue.admit(price().body(min(length, 6 * limit_chars)))


def too_large(items: Sequence[str | Sequence[str]], model: str) -> Response | None:
    """413 for a request over SENPOS_MAX_REQUEST_CHARS: what one request may cost everyone else is bounded."""
    total, limit = sum(len(x) if isinstance(x, str) else sum(map(len, x)) for x in items), LIMITS[model]
    if total <= limit:
        return None
    return json_response({"error": f"the request has {total} characters in all; the limit is {limit} "
                                   f"(SENPOS_MAX_REQUEST_CHARS): split it into smaller requests"}, 413)


async def info(request: Request) -> Response:
    """GET /info: the service version and each model's name, version, sha256, headline metrics and provider."""
    return json_response(bentoml.get_current_service().info())


# What @bentoml.service made of the class, for the type checker (mypy keeps the class itself: python/mypy#3135).
SERVICE = cast("bentoml.Service[Senpos]", Senpos)
SERVICE.add_asgi_middleware(RebalanceMiddleware, every=SETTINGS.keepalive_requests)
SERVICE.add_asgi_middleware(JsonOnlyMiddleware)
SERVICE.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
SERVICE.add_asgi_middleware(RetryAfterMiddleware, seconds=1)
SERVICE.add_asgi_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)
serve_docs(Senpos)
add_route(Senpos, "/info", info, methods=["GET"])
describe_openapi(Senpos, describe)
on_invalid_input(Senpos, invalid_input)
SERVICE.mount_asgi_app(page_app(), path="/", name="page")  # the web page; BentoML's Swagger index is at /docs
plain_json_outputs(Senpos)
put_in_front(Senpos, lambda app: AccessMiddleware(ShedLoadMiddleware(app, doors=DOORS), keys=SETTINGS.api_keys,
                                                  origins=SETTINGS.cors_origins,
                                                  protected=("/sentiment", "/pos-tag", "/info"),
                                                  routes=KnownRoutes(app.routes).check))
