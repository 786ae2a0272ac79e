"""The web page at `/`: static files from service/static/ and the PFR tag table they read, as one ASGI app.

Mounted at `/` with `Senpos.mount_asgi_app`: BentoML mounts it passively (it answers only the paths it has
routes for), ahead of its own Swagger index, so every API route and `/docs` stay as they are.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from senpos.pos_tags import PFR_TAGS, UPOS_NAMES

STATIC = Path(__file__).parent / "static"
# Everything the page loads comes from this server: nothing from elsewhere can run or be fetched.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def pos_tag_table() -> dict:
    """senpos/pos_tags.py as JSON: each PFR tag's Chinese and English description and UPOS, and the UPOS names."""
    return {"tags": {tag: {"zh": zh, "en": en, "upos": upos} for tag, (zh, en, upos) in PFR_TAGS.items()},
            "upos": UPOS_NAMES}


def page_app() -> Starlette:
    table = pos_tag_table()

    async def index(_request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def tags(_request) -> JSONResponse:
        return JSONResponse(table, headers={"cache-control": "max-age=3600"})

    return Starlette(routes=[
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/pos-tags.json", tags, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
