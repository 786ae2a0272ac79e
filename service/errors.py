"""What a client's mistakes are answered with: a request body that breaks a rule (400, or 413 for a size limit),
a path no route serves (404), a method a route does not take (405); each `{"error": one sentence, ...}`.
Nothing here logs: a client's mistake is not a server error, and request text must stay out of the logs."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles

from service.schemas import LIMIT_ERROR, json_response
from service.settings import SETTINGS

Scope = dict[str, Any]
BODY_SHAPE = 'the body must be a JSON object {"texts": [...]}'
NOT_FOUND = "nothing is served at this path: the API is POST /sentiment and POST /pos-tag (GET /docs describes it)"
NO_SUCH_MODEL = ("no such model or version: the Open Inference Protocol models here are 'sentiment' and 'pos' "
                 "(GET /v2/models/<model> names each one's version)")
MESSAGES = {  # pydantic error type -> what to say (pydantic's own words otherwise)
    "missing": "missing; " + BODY_SHAPE,
    "list_type": "expected a list",
    "string_type": "expected a string",
    "too_short": "expected at least 1 item",
}


def where(loc: Sequence[str | int]) -> str:
    """("texts", 2) -> "texts[2]"."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def sentence(error: ErrorDetails) -> tuple[int, str]:
    """One pydantic error as (status, a sentence naming the field and item)."""
    kind, loc, ctx = error["type"], error.get("loc", ()), error.get("ctx") or {}
    if kind == "json_invalid":
        return 400, f"the body is not valid JSON: {ctx.get('error', error['msg'])}"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not loc:
        return 400, BODY_SHAPE
    if kind == "too_long" and loc == ("texts",):
        return 413, (f"texts has {ctx.get('actual_length', 'too many')} items; the limit is {SETTINGS.max_items} "
                     "(SENPOS_MAX_ITEMS): split it into smaller requests")
    message = MESSAGES.get(kind) or error["msg"].removeprefix("Value error, ")
    return (413 if kind == LIMIT_ERROR else 400), f"{where(loc)}: {message}" if loc else message


def invalid_input(exc: ValidationError) -> Any:
    """The answer to a body that failed validation: 413 when any problem is a size limit (the rule for every
    limit), else 400; `error` is the first such problem, `detail` lists them all (without the input)."""
    errors = exc.errors(include_url=False)
    said = [sentence(e) for e in errors]
    status, message = next((s for s in said if s[0] == 413), said[0])
    if len(said) > 1:
        message += f" (and {len(said) - 1} more problem{'s' if len(said) > 2 else ''}, listed in detail)"
    detail = exc.errors(include_url=False, include_context=False, include_input=False)
    return json_response({"error": message, "detail": detail}, status)


def _static_file_exists(files: StaticFiles, scope: Scope) -> bool:
    _, found = files.lookup_path(files.get_path(scope))
    return found is not None and stat.S_ISREG(found.st_mode)


def resolve(routes: Sequence[BaseRoute], scope: Scope) -> tuple[Match, frozenset[str]]:
    """How `routes` match a request: FULL (served), PARTIAL (the path is, not the method: the methods it
    takes) or NONE; into mounted apps, and a static file only when it exists."""
    allowed: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        inner = {**scope, **child}
        if match == Match.FULL and isinstance(route, Mount):
            app = route.app
            if isinstance(app, StaticFiles):
                if scope["method"] in ("GET", "HEAD") and _static_file_exists(app, inner):
                    return Match.FULL, frozenset()
                match = Match.PARTIAL if _static_file_exists(app, inner) else Match.NONE
                allowed |= {"GET", "HEAD"} if match == Match.PARTIAL else set()
                continue
            if (app_routes := getattr(app, "routes", None)) is not None:
                match, methods = resolve(app_routes, inner)
                allowed |= methods
                if match == Match.FULL:
                    return match, frozenset()
                continue
        if match == Match.FULL:
            return match, frozenset()
        allowed |= set(getattr(route, "methods", None) or ())
    return (Match.PARTIAL if allowed else Match.NONE), frozenset(allowed)


class KnownRoutes:
    """`check(scope)`: None for a request a route serves, else (status, message, headers) for a path that no route
    serves (404) or a method its route does not take (405, with `Allow`). AccessMiddleware answers those, before
    BentoML's middleware: its request metrics are labelled by the raw path, so an unknown path that reached them
    would add label sets (memory, /metrics lines) without bound. A path that only needs a trailing slash added
    or removed goes on (Starlette redirects it)."""

    def __init__(self, routes: Sequence[BaseRoute]):
        self.routes = routes
        self.served: set[tuple[str, str]] = set()  # (method, path) known to be served: routes first matched

    def check(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        if (scope["method"], scope["path"]) in self.served:
            return None
        match, allowed = resolve(self.routes, scope)
        if match == Match.NONE:
            path = scope["path"]
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            if other and resolve(self.routes, {**scope, "path": other})[0] != Match.NONE:
                match = Match.FULL
        if match == Match.FULL:
            if len(self.served) < 4096:
                self.served.add((scope["method"], scope["path"]))
            return None
        if match == Match.PARTIAL:
            methods = ", ".join(sorted(allowed))
            return 405, f"{scope['method']} is not allowed here; use {methods}", [(b"allow", methods.encode())]
        return 404, NO_SUCH_MODEL if scope["path"].startswith("/v2/models/") else NOT_FOUND, []
