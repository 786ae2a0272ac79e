"""The one place senpos bends BentoML's internals; written for exactly BENTOML_VERSION, checked at import.

- `put_in_front`: our load shedding runs before BentoML's own middleware (its metrics, tracing, timeout and
  concurrency layers), so a refusal costs little; BentoML offers no hook there, so `Service.to_asgi` is wrapped.
- BentoML's timeout middleware is swapped for service/middleware.py's, which cancels its timer.
- `docs_app`: the Swagger page BentoML serves at `/`, served at `/docs`.
- `plain_json_outputs`: BentoML otherwise rebuilds each output's JSON schema per response to find its media type.
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
from starlette.middleware import Middleware  # noqa: E402

from service.middleware import TimeoutMiddleware  # noqa: E402

_original_to_asgi = bentoml.Service.to_asgi
_fronts: dict[int, Callable[[Any], Any]] = {}  # id(service) -> wraps its ASGI app


def _to_asgi(self, is_main: bool = True):
    app = _original_to_asgi(self, is_main)
    front = _fronts.get(id(self))
    if front is None:
        return app
    # Starlette builds its middleware stack on the first request, from this list.
    app.user_middleware = [Middleware(TimeoutMiddleware, timeout=m.kwargs["timeout"])
                           if m.cls is BentoTimeoutMiddleware else m for m in app.user_middleware]
    return front(app)


bentoml.Service.to_asgi = _to_asgi


def put_in_front(service: bentoml.Service, front: Callable[[Any], Any]) -> None:
    """`front(app)` wraps the ASGI app BentoML builds for `service`, outside all of BentoML's middleware."""
    _fronts[id(service)] = front


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
