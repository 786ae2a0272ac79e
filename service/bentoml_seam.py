"""The one place senpos bends BentoML's internals; written for exactly BENTOML_VERSION, checked at import.

- `put_in_front`: our load shedding runs before BentoML's own middleware (its metrics, tracing, timeout and
  concurrency layers), so a refusal costs little; BentoML offers no hook there, so `Service.to_asgi` is wrapped.
- BentoML's timeout middleware is swapped for service/middleware.py's, which cancels its timer.
- `serve_docs`: the Swagger page BentoML serves at `/`, served at `/docs` as senpos's own (its title, no script
  from the internet), with the document, whole, at `/docs.json` and `/docs/docs.json`.
- `plain_json_outputs`: BentoML otherwise rebuilds each output's JSON schema per response to find its media type.
- `add_route`: plain GET routes (GET /info) beside BentoML's POST APIs, inside its middleware.
- `describe_openapi`: the OpenAPI document describes senpos, not BentoML (`Service.openapi_spec` is wrapped; the
  parts BentoML's spec classes cannot hold, such as security schemes, are served but not kept in a built Bento).
- `on_invalid_input`: a body that fails validation is answered by senpos, not logged by BentoML at ERROR with a
  traceback that quotes the input (`ServiceAppFactory.api_endpoint` is wrapped).
- `serve_socket_dir`, `is_service_worker`: where `bentoml serve` keeps its sockets, and which of its processes
  are service workers, read from what BentoML puts in the environment and on command lines.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml

BENTOML_VERSION = "1.4.40"

if bentoml.__version__ != BENTOML_VERSION:
    raise SystemExit(f"senpos was written against bentoml=={BENTOML_VERSION} and relies on its internals "
                     f"(service/bentoml_seam.py); this environment has bentoml=={bentoml.__version__}. "
                     "Install the pinned version: pip install -c constraints.txt -e .")

from _bentoml_impl.server.app import ServiceAppFactory  # noqa: E402
from bentoml._internal.server.http.traffic import TimeoutMiddleware as BentoTimeoutMiddleware  # noqa: E402
from bentoml._internal.service.openapi.specification import OpenAPISpecification  # noqa: E402
from bentoml._internal.utils.cattr import bentoml_cattr  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from service.middleware import TimeoutMiddleware  # noqa: E402

_original_to_asgi = bentoml.Service.to_asgi
_fronts: dict[int, Callable[[Any], Any]] = {}  # id(service) -> wraps its ASGI app
_routes: dict[int, list[tuple[str, Callable, list[str]]]] = {}  # id(service) -> extra (path, endpoint, methods)
_openapi_edits: dict[int, Callable[[dict], dict]] = {}  # id(service) -> edits its OpenAPI document
_invalid_input: dict[int, Callable[[ValidationError], Response]] = {}  # id(service) -> answers a bad body
_docs: set[int] = set()  # id(service) of those whose docs are served at /docs
_original_openapi_spec = bentoml.Service.openapi_spec
_original_api_endpoint = ServiceAppFactory.api_endpoint
# What BentoML's spec classes cannot hold (they forbid extra keys): served, left out of `Service.openapi_spec`.
UNHELD = {"document": ("security",), "components": ("securitySchemes",), "operation": ("security",)}


def _to_asgi(self, is_main: bool = True):
    app = _original_to_asgi(self, is_main)
    if id(self) in _docs:  # first: BentoML's own /docs.json (the document as its classes hold it) is shadowed
        app.router.routes[:0] = _docs_routes(self)
    for path, endpoint, methods in _routes.get(id(self), []):
        app.add_route(path, endpoint, methods=methods)
    front = _fronts.get(id(self))
    if front is None:
        return app
    # Starlette builds its middleware stack on the first request, from this list.
    app.user_middleware = [Middleware(TimeoutMiddleware, timeout=m.kwargs["timeout"])
                           if m.cls is BentoTimeoutMiddleware else m for m in app.user_middleware]
    return front(app)


def openapi_document(service: bentoml.Service) -> dict:
    """The whole OpenAPI document of `service`, as served."""
    document = _original_openapi_spec.fget(service).asdict()
    edit = _openapi_edits.get(id(service))
    return document if edit is None else edit(document)


def _openapi_spec(self) -> OpenAPISpecification:
    document = openapi_document(self)
    held = {k: v for k, v in document.items() if k not in UNHELD["document"]}
    if "components" in held:
        held["components"] = {k: v for k, v in held["components"].items() if k not in UNHELD["components"]}
    held["paths"] = {path: {method: {k: v for k, v in op.items() if k not in UNHELD["operation"]}
                            for method, op in item.items()} for path, item in document["paths"].items()}
    return bentoml_cattr.structure(held, OpenAPISpecification)


async def _api_endpoint(self, name: str, request):
    try:
        return await _original_api_endpoint(self, name, request)
    except ValidationError as exc:
        answer = _invalid_input.get(id(self.service))
        if answer is None:
            raise
        return answer(exc)


bentoml.Service.to_asgi = _to_asgi
bentoml.Service.openapi_spec = property(_openapi_spec)
ServiceAppFactory.api_endpoint = _api_endpoint


def put_in_front(service: bentoml.Service, front: Callable[[Any], Any]) -> None:
    """`front(app)` wraps the ASGI app BentoML builds for `service`, outside all of BentoML's middleware."""
    _fronts[id(service)] = front


def add_route(service: bentoml.Service, path: str, endpoint: Callable, methods: list[str]) -> None:
    """A Starlette route `endpoint(request) -> Response` in the app BentoML builds for `service`."""
    _routes.setdefault(id(service), []).append((path, endpoint, methods))


def describe_openapi(service: bentoml.Service, edit: Callable[[dict], dict]) -> None:
    """`edit(document) -> document` rewrites the OpenAPI document BentoML generates for `service` (served at
    /docs.json and /docs/docs.json, and written into a built Bento)."""
    _openapi_edits[id(service)] = edit


def on_invalid_input(service: bentoml.Service, answer: Callable[[ValidationError], Response]) -> None:
    """A request body of `service`'s APIs that fails validation is answered `answer(error)`, and not logged."""
    _invalid_input[id(service)] = answer


def middleware_classes(app) -> list[type]:
    """The classes of the middleware BentoML will build for an app from `service.to_asgi()`, outermost first."""
    return [m.cls for m in app.user_middleware]


def serve_socket_dir() -> str | None:
    """The directory `bentoml serve` keeps its Unix sockets in (removed when it stops), from the runner map it
    hands its workers; None outside a server."""
    uris = json.loads(os.environ.get("BENTOML_RUNNER_MAP") or "{}")
    socket = next((u[len("unix://") :] for u in uris.values() if u.startswith("unix://")), None)
    return os.path.dirname(socket) if socket else None


def is_service_worker(cmdline: list[str]) -> bool:
    """Whether a process, by its command line, is a service worker of `bentoml serve`."""
    return "_bentoml_impl.worker.service" in " ".join(cmdline)


def plain_json_outputs(service: bentoml.Service) -> None:
    for api in service.apis.values():
        api.output_spec.media_type = "application/json"


def serve_docs(service: bentoml.Service) -> None:
    """`/docs` (and `/docs/`): BentoML's Swagger UI, titled senpos, with no script from the internet (BentoML's
    page loads a tag manager; Swagger's validator badge would fetch from swagger.io); "Try it out" calls the
    server's root (the document's `servers`). The document, whole, at `/docs.json` and `/docs/docs.json`."""
    _docs.add(id(service))


INITIALIZER = """<script>
window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
};
</script>"""


def docs_page(title: str) -> bytes:
    import _bentoml_impl.server as bentoml_server

    page = (Path(bentoml_server.__file__).parent / "main-openapi.html").read_text(encoding="utf-8")
    page = re.sub(r"\s*<!-- Google Tag Manager.*?<!-- End Google Tag Manager[^>]*-->", "", page, flags=re.S)
    page = re.sub(r"<title>.*?</title>", f"<title>{title}</title>", page)
    page = page.replace('<script src="./static_content/swagger-initializer.js" charset="UTF-8"> </script>',
                        INITIALIZER)
    page = page.replace("./static_content/", "/static_content/")
    if "googletagmanager" in page or "swagger-initializer" in page:
        raise RuntimeError("BentoML's Swagger page is not the one service/bentoml_seam.py was written for")
    return page.encode()


def _docs_routes(service: bentoml.Service) -> list[Route]:
    page = docs_page(openapi_document(service)["info"]["title"])

    async def docs(_: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def document(_: Request) -> Response:
        return Response(json.dumps(openapi_document(service)), media_type="application/json")

    return [Route("/docs", docs, methods=["GET"]), Route("/docs/", docs, methods=["GET"]),
            Route("/docs.json", document, methods=["GET"]), Route("/docs/docs.json", document, methods=["GET"])]
