"""A fix for BentoML 1.4.40's client to dependency services, applied at import by service.py.

Its SessionManager replaces the aiohttp session every 100 requests (or 300 s) and *closes the old one at
once*, while other requests are still in flight on it: they fail with "Server disconnected" or "Cannot
write to closing transport" and the API answers 500. Under concurrent load that is several percent of all
requests (measured: 43 of 458 at 16 in flight). Here the old session is closed only after the request
timeout, when nothing can still be using it. Regression test: tests/test_service.py (many concurrent
requests, no 5xx).
"""

from __future__ import annotations

import asyncio


def defer_session_close() -> None:
    from _bentoml_impl.client import proxy2

    manager = proxy2.SessionManager
    if getattr(manager, "_senpos_patched", False):
        return
    original = manager.get_session

    async def get_session(self):
        old = self._session
        if old is not None and self._should_refresh():
            self._session = None  # the original then builds a fresh session
            grace = (self._timeout.total or 60.0) + 5.0
            loop = asyncio.get_running_loop()
            loop.call_later(grace, lambda: loop.create_task(old.close()))
        return await original(self)

    manager.get_session = get_session
    manager._senpos_patched = True
