"""The one place senpos bends BentoML's internals; written for exactly BENTOML_VERSION, checked at import.

- `put_in_front`: our load shedding runs before BentoML's own middleware (its metrics, tracing, timeout and
  concurrency layers), so a refusal costs little; BentoML offers no hook there, so `Service.to_asgi` is wrapped.
- BentoML's timeout middleware is swapped for service/middleware.py's, which cancels its timer.
- `docs_app`: the Swagger page BentoML serves at `/`, served at `/docs`.
- `plain_json_outputs`: BentoML otherwise rebuilds each output's JSON schema per response to find its media type.
- `add_route`: plain GET routes (GET /info) beside BentoML's POST APIs, inside its middleware.
- `describe_openapi`: the OpenAPI document describes senpos, not BentoML (`Service.openapi_spec` is wrapped).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml

BENTOML_VERSION = "1.4.40"

if bentoml.__version__ != BENTOML_VERSION:
    raise SystemExit(f"senpos was written against bentoml=={BENTOML_VERSION} and relies on its internals "
                     f"(service/bentoml_seam.py); this environment has bentoml=={bentoml.__version__}. "
                     "Install the pinned version: pip install -c constraints.txt -e .")

from bentoml._internal.server.http.traffic import TimeoutMiddleware as BentoTimeoutMiddleware  # noqa: E402
from bentoml._internal.service.openapi.specification import OpenAPISpecification  # noqa: E402
from bentoml._internal.utils.cattr import bentoml_cattr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from service.middleware import TimeoutMiddleware  # noqa: E402

_original_to_asgi = bentoml.Service.to_asgi
_fronts: dict[int, Callable[[Any], Any]] = {}  # id(service) -> wraps its ASGI app
_routes: dict[int, list[tuple[str, Callable, list[str]]]] = {}  # id(service) -> extra (path, endpoint, methods)
_openapi_edits: dict[int, Callable[[dict], dict]] = {}  # id(service) -> edits its OpenAPI document
_original_openapi_spec = bentoml.Service.openapi_spec


def _to_asgi(self, is_main: bool = True):
    app = _original_to_asgi(self, is_main)
    for path, endpoint, methods in _routes.get(id(self), []):
        app.add_route(path, endpoint, methods=methods)
    front = _fronts.get(id(self))
    if front is None:
        return app
    # Starlette builds its middleware stack on the first request, from this list.
    app.user_middleware = [Middleware(TimeoutMiddleware, timeout=m.kwargs["timeout"])
                           if m.cls is BentoTimeoutMiddleware else m for m in app.user_middleware]
    return front(app)


def _openapi_spec(self) -> OpenAPISpecification:
    spec = _original_openapi_spec.fget(self)
    edit = _openapi_edits.get(id(self))
    return spec if edit is None else bentoml_cattr.structure(edit(spec.asdict()), OpenAPISpecification)


bentoml.Service.to_asgi = _to_asgi
bentoml.Service.openapi_spec = property(_openapi_spec)


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


def middleware_classes(app) -> list[type]:
    """The classes of the middleware BentoML will build for an app from `service.to_asgi()`, outermost first."""
    return [m.cls for m in app.user_middleware]


def plain_json_outputs(service: bentoml.Service) -> None:
    for api in service.apis.values():
        api.output_spec.media_type = "application/json"


def docs_app(openapi_spec: Callable[[], Any]):
    """`/docs`: the Swagger UI that BentoML serves at `/`, with the OpenAPI document at `/docs/docs.json`.

    Mounted under /docs, so the page's relative asset links are made absolute.
    """
    import _bentoml_impl.server as bentoml_server

    page = (Path(bentoml_server.__file__).parent / "main-openapi.html").read_text(encoding="utf-8")
    page_bytes = page.replace("./static_content/", "/static_content/").encode()

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("docs.json"):
            body, kind = json.dumps(openapi_spec().asdict()).encode(), b"application/json"
        else:
            body, kind = page_bytes, b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
