"""`Client` (blocking) and `AsyncClient`: the same methods over one shared core (_core.py)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

import httpx

from senpos_client._core import (
    PosItem,
    PosResult,
    RetryPolicy,
    SentimentResult,
    chunks,
    parse_pos,
    parse_sentiment,
    pos_payload,
    step,
)
from senpos_client.errors import Timeout

DEFAULT_MAX_ITEMS = 256  # the server's default per-request limit (SENPOS_MAX_ITEMS)


class Client:
    """Blocking client. `max_items` is the server's per-request item limit; longer lists are split."""

    def __init__(self, base_url: str = "http://localhost:3000", *, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 0.25, max_items: int = DEFAULT_MAX_ITEMS,
                 transport: httpx.BaseTransport | None = None):
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.retry = RetryPolicy(retries=retries, backoff=backoff)
        self.max_items = max_items

    def sentiment(self, texts: Sequence[str]) -> list[SentimentResult]:
        return [r for chunk in chunks(list(texts), self.max_items)
                for r in parse_sentiment(self._post("/sentiment", {"texts": list(chunk)}))]

    def pos_tag(self, items: Sequence[PosItem]) -> list[PosResult]:
        return [r for chunk in chunks(list(items), self.max_items)
                for r in parse_pos(self._post("/pos-tag", pos_payload(chunk)))]

    def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise Timeout(f"{self._http.base_url} not ready after {timeout}s")
            time.sleep(interval)

    def _post(self, path: str, payload: dict) -> object:
        for attempt in itertools.count(1):
            try:
                outcome: httpx.Response | httpx.HTTPError = self._http.post(path, json=payload)
            except httpx.HTTPError as e:
                outcome = e
            done, value = step(self.retry, attempt, outcome, f"POST {self._http.base_url}{path}")
            if done:
                return value
            time.sleep(value)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient:
    """Async client with the same methods; chunks of a long list run `concurrency` at a time."""

    def __init__(self, base_url: str = "http://localhost:3000", *, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 0.25, max_items: int = DEFAULT_MAX_ITEMS, concurrency: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None):
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self.retry = RetryPolicy(retries=retries, backoff=backoff)
        self.max_items = max_items
        self.concurrency = concurrency

    async def sentiment(self, texts: Sequence[str]) -> list[SentimentResult]:
        bodies = await self._map("/sentiment", [{"texts": list(c)} for c in chunks(list(texts), self.max_items)])
        return [r for body in bodies for r in parse_sentiment(body)]

    async def pos_tag(self, items: Sequence[PosItem]) -> list[PosResult]:
        bodies = await self._map("/pos-tag", [pos_payload(c) for c in chunks(list(items), self.max_items)])
        return [r for body in bodies for r in parse_pos(body)]

    async def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (await self._http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise Timeout(f"{self._http.base_url} not ready after {timeout}s")
            await asyncio.sleep(interval)

    async def _map(self, path: str, payloads: list[dict]) -> list[object]:
        """POST every payload, at most `concurrency` in flight; answers in payload order."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(payload: dict) -> object:
            async with gate:
                return await self._post(path, payload)

        return list(await asyncio.gather(*(one(p) for p in payloads)))

    async def _post(self, path: str, payload: dict) -> object:
        for attempt in itertools.count(1):
            try:
                outcome: httpx.Response | httpx.HTTPError = await self._http.post(path, json=payload)
            except httpx.HTTPError as e:
                outcome = e
            done, value = step(self.retry, attempt, outcome, f"POST {self._http.base_url}{path}")
            if done:
                return value
            await asyncio.sleep(value)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
