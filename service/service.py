"""senpos HTTP API: POST /sentiment and POST /pos-tag, with adaptive batching in one queue per model.

`SENPOS_API_WORKERS` processes validate, tokenise and decode (service/pipeline.py). The model work goes to a
batching queue per model (service/batching.py): in each API worker (`SENPOS_LAYOUT=single`), or in one model
process, `SenposModels`, that every API worker feeds (`split`; the default on CUDA, where a GPU needs large
batches from all workers). A request whose queue is over its budget is refused at once (503, Retry-After).
docs/design.md says why each piece is built the way it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import cast

import bentoml
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

import senpos
from senpos.identity import model_identity
from service.access import AccessMiddleware
from service.admission import Door
from service.bentoml_seam import (
    add_route,
    describe_openapi,
    on_invalid_input,
    plain_json_outputs,
    put_in_front,
    serve_docs,
)
from service.errors import KnownRoutes, invalid_input
from service.memory import freeze_long_lived_objects
from service.metrics import MODEL_INFO
from service.middleware import (
    BodyLimitMiddleware,
    JsonOnlyMiddleware,
    RebalanceMiddleware,
    RetryAfterMiddleware,
    ShedLoadMiddleware,
    ticket_of,
)
from service.model_store import declared_models
from service.models import LocalModels, check_models, open_models
from service.oip.app import infer_paths, oip_app, protected_paths, server_metadata_route
from service.openapi import describe
from service.page import page_app
from service.pipeline import Pipeline
from service.schemas import PosItems, PosResult, SentimentResult, Texts, json_response, over_request_limit
from service.settings import SETTINGS
from service.split.server import ModelServer

log = logging.getLogger("senpos")
# BentoML sets only its own loggers to INFO: without this, which provider runs each model would never be logged.
log.setLevel(logging.INFO)
LAYOUT = SETTINGS.resolved_layout()
LIMITS = SETTINGS.max_request_chars  # model -> characters per request
# The Open Inference Protocol names each model's version in its paths (service/oip/app.py).
OIP_VERSIONS = {m: model_identity(m, d)["version"] for m, d in (("sentiment", SETTINGS.sentiment_model),
                                                                ("pos", SETTINGS.pos_model))}


class QuietRefusals(logging.Filter):
    """Leave load-shedding answers (503, 429) out of the access log (SENPOS_ACCESS_LOG=1); /metrics counts them:
    under overload a line per refusal costs more CPU than the refusal."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) == 4 and str(args[2]).startswith(("status=503", "status=429")))


logging.getLogger("bentoml.access").addFilter(QuietRefusals())


if bentoml.server_context.worker_index is None:  # the serving process itself, not one of its workers
    check_models()


@bentoml.service(workers=1, traffic={"timeout": SETTINGS.timeout_s})
class SenposModels:
    """The `split` layout's model process: both models and their batching queues, fed by every API worker over
    SENPOS_MODEL_ADDRESS (service/split/)."""

    stored_sentiment, stored_pos = declared_models(SETTINGS.store_tags)  # the store's models: a Bento carries them

    def __init__(self) -> None:
        models = LocalModels()  # what a `single` worker holds: here it serves every API worker
        self.batchers = models.queues
        self.server = ModelServer(models.queues, {m: models.pricing(m) for m in models.queues}, models.providers())
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
        model_process = bentoml.depends(SenposModels)  # started beside the API workers by `bentoml serve`

    def __init__(self) -> None:
        self.models = models = open_models(LAYOUT)
        self.pipeline = Pipeline(models)
        self.model_dirs = {"sentiment": models.sentiment.model_dir, "pos": models.pos.model_dir}
        doors = {m: Door(models.queues[m], functools.partial(models.pricing, m), LIMITS[m])
                 for m in ("sentiment", "pos")}
        self.doors = {"/sentiment": doors["sentiment"], "/pos-tag": doors["pos"],
                      **{path: doors[m] for path, m in infer_paths(OIP_VERSIONS).items()}}
        freeze_long_lived_objects()

    @bentoml.on_startup
    async def start(self) -> None:
        await self.models.start()
        for model, info in self.info()["models"].items():
            MODEL_INFO.labels(model=model, **{k: info[k] for k in ("name", "version", "sha256", "provider")}).set(1)

    def info(self) -> dict:
        """What GET /info says: this version, and each model's identity, headline metrics and provider."""
        providers = self.models.providers()
        return {"version": senpos.__version__,
                "models": {m: {**model_identity(m, d), "provider": providers.get(m, "unknown")}
                           for m, d in self.model_dirs.items()}}

    async def __is_ready__(self) -> bool:
        """Split layout: ready while the model process can be reached."""
        return await self.models.ready()

    @bentoml.api(route="/sentiment")
    async def sentiment(self, texts: Texts, ctx: bentoml.Context) -> list[SentimentResult]:
        """P(positive) for each English text, in order: `{"label": "positive"|"negative", "score": p}`."""
        # The annotation is the OpenAPI schema's; the answer is a ready Response (its JSON, or a 413).
        return (too_large(texts, "sentiment", ctx)  # type: ignore[return-value]
                or json_response(await self.pipeline.sentiment(texts, ticket_of(ctx.request))))

    @bentoml.api(route="/pos-tag")
    async def pos_tag(self, texts: PosItems, ctx: bentoml.Context) -> list[PosResult]:
        """Words, PFR tags, Universal POS tags and [start, end) offsets for each item, in order."""
        return (too_large(texts, "pos", ctx)  # type: ignore[return-value]
                or json_response(await self.pipeline.pos_tag(texts, ticket_of(ctx.request))))


def too_large(items: Sequence[str | Sequence[str]], model: str, ctx: bentoml.Context) -> Response | None:
    """413 for a request over SENPOS_MAX_REQUEST_CHARS."""
    if (message := over_request_limit(items, model)) is None:
        return None
    ctx.response.status_code = 413  # BentoML sets a returned response's status from the context's
    return json_response({"error": message}, 413)


def current() -> Senpos:
    """This worker's service instance (BentoML makes one per worker)."""
    return bentoml.get_current_service()


async def info(request: Request) -> Response:
    """GET /info: the service version and each model's name, version, sha256, headline metrics and provider."""
    return json_response(current().info())


# What @bentoml.service made of the class, for the type checker (mypy keeps the class itself: python/mypy#3135).
SERVICE = cast("bentoml.Service[Senpos]", Senpos)
SERVICE.add_asgi_middleware(RebalanceMiddleware, every=SETTINGS.keepalive_requests)
SERVICE.add_asgi_middleware(JsonOnlyMiddleware, binary=frozenset(infer_paths(OIP_VERSIONS)))
SERVICE.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
SERVICE.add_asgi_middleware(RetryAfterMiddleware, seconds=1)
SERVICE.add_asgi_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)
serve_docs(Senpos)
add_route(Senpos, "/info", info, methods=["GET"])
add_route(Senpos, "/v2", server_metadata_route, methods=["GET"])
describe_openapi(Senpos, describe)
on_invalid_input(Senpos, invalid_input)
SERVICE.mount_asgi_app(oip_app(current, OIP_VERSIONS), path="/v2", name="oip")  # KServe V2, beside the native API
SERVICE.mount_asgi_app(page_app(), path="/", name="page")  # the web page; BentoML's Swagger index is at /docs
plain_json_outputs(Senpos)
put_in_front(Senpos, lambda app: AccessMiddleware(ShedLoadMiddleware(app, doors=lambda: current().doors),
                                                  keys=SETTINGS.api_keys,
                                                  origins=SETTINGS.cors_origins,
                                                  protected=("/sentiment", "/pos-tag", "/info",
                                                             *protected_paths(OIP_VERSIONS)),
                                                  routes=KnownRoutes(app.routes).check))
