"""The Open Inference Protocol (KServe V2) over REST, beside the native API: `GET /v2` is added as a route,
the rest is this app, mounted at /v2. Requests take the same way as POST /sentiment and POST /pos-tag: the same
doors (service.service adds the infer paths), validation, limits, pipeline and queues, keys, request ids and
metrics.

Every route is spelled out, one per model and version, rather than matched by a pattern: BentoML labels its
request metrics by the raw path, so a path any name matched would add a label set per name anyone sends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import senpos
from service.errors import invalid_input
from service.middleware import ticket_of
from service.models import Models
from service.oip.tensors import HEADER_LENGTH, OipError, Output, dumps, encode_response, parse_request
from service.pipeline import Pipeline
from service.schemas import PosItems, Texts, json_response, over_request_limit
from service.settings import SETTINGS

EXTENSIONS = ["binary_tensor_data"]


class SentimentInput(BaseModel):
    text: Texts


class PosInput(BaseModel):
    text: PosItems


@dataclass(frozen=True)
class Spec:
    """A model as the protocol describes it: one BYTES input `text`, its outputs' names and datatypes."""

    outputs: dict[str, str]
    validator: type[BaseModel]


SPECS = {"sentiment": Spec({"score": "FP32", "label": "BYTES"}, SentimentInput),
         "pos": Spec({"result": "BYTES"}, PosInput)}


class Host(Protocol):
    """What the routes need of the service instance of this worker."""

    pipeline: Pipeline
    models: Models


def paths(model: str, version: str) -> list[str]:
    """A model's paths under /v2: unversioned, and with its version."""
    return [f"/models/{model}", f"/models/{model}/versions/{version}"]


def infer_paths(versions: Mapping[str, str]) -> dict[str, str]:
    """Full infer path -> model, for the doors."""
    return {f"/v2{p}/infer": m for m, v in versions.items() for p in paths(m, v)}


def protected_paths(versions: Mapping[str, str]) -> list[str]:
    """What needs an API key when the server has keys: all but the health checks."""
    return ["/v2", *(f"/v2{p}{end}" for m, v in versions.items() for p in paths(m, v) for end in ("", "/ready",
                                                                                                    "/infer"))]


def server_metadata() -> dict:
    return {"name": "senpos", "version": senpos.__version__, "extensions": EXTENSIONS}


def model_metadata(model: str, version: str) -> dict:
    return {"name": model, "versions": [version], "platform": "onnxruntime_onnx",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": n, "datatype": d, "shape": [-1]} for n, d in SPECS[model].outputs.items()]}


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


async def _outputs(host: Host, model: str, texts: list[str], request: Request) -> dict[str, Output]:
    if model == "sentiment":
        results = await host.pipeline.sentiment(texts, ticket_of(request))
        return {"score": Output("score", "FP32", [r["score"] for r in results]),
                "label": Output("label", "BYTES", [r["label"] for r in results])}
    results = await host.pipeline.pos_tag(texts, ticket_of(request))
    return {"result": Output("result", "BYTES", [dumps(r) for r in results])}


def oip_app(host: Callable[[], Host], versions: Mapping[str, str]) -> Starlette:
    """The /v2 routes for the models `versions` names (model -> version)."""

    async def live(_: Request) -> Response:
        return Response(status_code=200)

    async def ready(_: Request) -> Response:
        # 4xx for "not ready", as the protocol says: a probe reads any non-2xx as not ready.
        return Response(status_code=200) if await host().models.ready() else error(400, "not ready")

    def metadata(model: str, version: str):
        async def endpoint(_: Request) -> Response:
            return json_response(model_metadata(model, version))
        return endpoint

    def infer(model: str, version: str):
        spec = SPECS[model]

        async def endpoint(request: Request) -> Response:
            encoding = request.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                return error(415, f"Content-Encoding {encoding!r} is not supported: send the body uncompressed")
            try:
                parsed = parse_request(await request.body(), request.headers.get(HEADER_LENGTH),
                                       list(spec.outputs), SETTINGS.max_items)
                texts = spec.validator.model_validate({"text": parsed.texts}).text  # type: ignore[attr-defined]
            except OipError as e:
                return error(e.status, str(e))
            except ValidationError as e:
                return invalid_input(e)
            if message := over_request_limit(texts, model):
                return error(413, message)
            try:
                outputs = await _outputs(host(), model, texts, request)
            except BentoMLException as e:  # the model process went away (split layout): 503, Retry-After
                return error(int(e.error_code), str(e))
            body, headers = encode_response(parsed, model, version, outputs)
            return Response(body, 200, headers=headers)
        return endpoint

    routes = [Route("/health/live", live, methods=["GET"]), Route("/health/ready", ready, methods=["GET"])]
    for model, version in versions.items():
        for path in paths(model, version):
            routes += [Route(path, metadata(model, version), methods=["GET"]),
                       Route(f"{path}/ready", ready, methods=["GET"]),
                       Route(f"{path}/infer", infer(model, version), methods=["POST"])]
    return Starlette(routes=routes)


async def server_metadata_route(_: Request) -> Response:
    """GET /v2: this server's name, version and protocol extensions."""
    return json_response(server_metadata())
