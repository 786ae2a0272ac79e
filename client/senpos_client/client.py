"""`Client` (blocking) and `AsyncClient`: the same methods over one shared core (_core.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from senpos_client._core import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_TIMEOUT,
    ENDPOINTS,
    PosItem,
    PosResult,
    SentimentResult,
    ServiceInfo,
    Settings,
    TimeoutArg,
    join_documents,
    parse_info,
    parse_pos,
    parse_sentiment,
    plan,
    pos_payload,
    settings,
    split_documents,
    step,
)
from senpos_client.errors import Timeout

if TYPE_CHECKING:
    from httpx._client import UseClientDefault

T = TypeVar("T")
MaxRequestChars = int | Mapping[str, int] | None


def _request_timeout(timeout: TimeoutArg, http_client: object) -> TimeoutArg | UseClientDefault:
    """The timeout each request passes: the httpx client's own unless one was given along with http_client."""
    return httpx.USE_CLIENT_DEFAULT if timeout is None or http_client is None else timeout


def _check_http_client(http_client: object, transport: object, kind: type) -> None:
    if http_client is not None and not isinstance(http_client, kind):
        raise TypeError(f"http_client must be an {kind.__module__}.{kind.__qualname__}")
    if http_client is not None and transport is not None:
        raise ValueError("give http_client or transport, not both")


class _Configured:
    """What both clients say about themselves; the key itself never appears."""

    _config: Settings

    @property
    def url(self) -> str:
        return self._config.url

    @property
    def max_items(self) -> int:
        return self._config.max_items

    @property
    def max_request_chars(self) -> dict[str, int]:
        """Characters per request, all items together, by model: {"sentiment": N, "pos": M}."""
        return dict(self._config.max_request_chars)

    def _plan(self, items: Sequence[T], model: str) -> list[list[T]]:
        """The requests a list goes out as (see _core.plan): raises for an item too long for any, before
        anything is sent."""
        return plan(list(items), self.max_items, self._config.max_request_chars[model], ENDPOINTS[model])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, api_key={'set' if self._config.secrets else None})"


class Client(_Configured):
    """Blocking client.

    `url` defaults to $SENPOS_URL (else http://localhost:3000) and `api_key` to $SENPOS_API_KEY; `headers` go
    with every request. `timeout` is seconds or an `httpx.Timeout` (None: 60 s, or `http_client`'s own).
    `http_client` is an `httpx.Client` of yours (proxies, TLS, event hooks); it is left open by `close()`.
    `max_items` and `max_request_chars` are the server's per-request limits (SENPOS_MAX_ITEMS and
    SENPOS_MAX_REQUEST_CHARS, its defaults unless given: one number, or {"sentiment": N, "pos": M}); a longer
    list is split into as many requests as it needs. A Chinese text longer than a /pos-tag request may hold is
    cut after sentence ends (。！？；… or a newline; inside a sentence only if one is longer than the limit),
    sent in parts and joined back into one result, offsets into the whole text; an English text, or a word list,
    that no request can hold is refused (ValidationError) before anything is sent.
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 headers: Mapping[str, str] | None = None, http_client: httpx.Client | None = None,
                 timeout: TimeoutArg = None, retries: int = 3, backoff: float = 0.25,
                 max_items: int = DEFAULT_MAX_ITEMS, transport: httpx.BaseTransport | None = None,
                 max_request_chars: MaxRequestChars = None):
        _check_http_client(http_client, transport, httpx.Client)
        self._config: Settings = settings(url, api_key, headers, retries, backoff, max_items, max_request_chars)
        self._timeout = _request_timeout(timeout, http_client)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                                                 transport=transport)

    def sentiment(self, texts: Sequence[str]) -> list[SentimentResult]:
        return [r for chunk in self._plan(texts, "sentiment")
                for r in parse_sentiment(self._request("POST", "/sentiment", {"texts": chunk}))]

    def pos_tag(self, items: Sequence[PosItem]) -> list[PosResult]:
        parts, owners = split_documents(items, self._config.max_request_chars["pos"])
        return join_documents([r for chunk in self._plan(parts, "pos")
                               for r in parse_pos(self._request("POST", "/pos-tag", pos_payload(chunk)))], owners)

    def info(self) -> ServiceInfo:
        """The server's version and the models it serves (GET /info)."""
        return parse_info(self._request("GET", "/info"))

    def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self._http.get(f"{self.url}/readyz", headers=self._config.headers, timeout=self._timeout)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise Timeout(f"{self.url} not ready after {timeout}s")
            time.sleep(interval)

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> object:
        where = self._config.where(method, path)
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome: httpx.Response | httpx.HTTPError = self._http.request(
                    method, f"{self.url}{path}", json=payload, headers=self._config.headers, timeout=self._timeout)
            except httpx.HTTPError as e:
                outcome = e
            body, delay = step(self._config, attempt, outcome, where)
            if delay is None:
                return body
            time.sleep(delay)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Configured):
    """Async client with the same methods and options (`http_client` is an `httpx.AsyncClient`); chunks of a
    long list run `concurrency` at a time, and when one chunk fails the others are cancelled."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 headers: Mapping[str, str] | None = None, http_client: httpx.AsyncClient | None = None,
                 timeout: TimeoutArg = None, retries: int = 3, backoff: float = 0.25,
                 max_items: int = DEFAULT_MAX_ITEMS, concurrency: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None, max_request_chars: MaxRequestChars = None):
        _check_http_client(http_client, transport, httpx.AsyncClient)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._config: Settings = settings(url, api_key, headers, retries, backoff, max_items, max_request_chars)
        self._timeout = _request_timeout(timeout, http_client)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                                                      transport=transport)
        self.concurrency = concurrency

    async def sentiment(self, texts: Sequence[str]) -> list[SentimentResult]:
        bodies = await self._map("/sentiment", [{"texts": c} for c in self._plan(texts, "sentiment")])
        return [r for body in bodies for r in parse_sentiment(body)]

    async def pos_tag(self, items: Sequence[PosItem]) -> list[PosResult]:
        parts, owners = split_documents(items, self._config.max_request_chars["pos"])
        bodies = await self._map("/pos-tag", [pos_payload(c) for c in self._plan(parts, "pos")])
        return join_documents([r for body in bodies for r in parse_pos(body)], owners)

    async def info(self) -> ServiceInfo:
        """The server's version and the models it serves (GET /info)."""
        return parse_info(await self._request("GET", "/info"))

    async def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = await self._http.get(f"{self.url}/readyz", headers=self._config.headers,
                                              timeout=self._timeout)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise Timeout(f"{self.url} not ready after {timeout}s")
            await asyncio.sleep(interval)

    async def _map(self, path: str, payloads: list[dict[str, Any]]) -> list[object]:
        """POST every payload, at most `concurrency` in flight; answers in payload order. The first failure
        cancels the chunks still running or waiting, so a doomed call stops loading the server."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(payload: dict[str, Any]) -> object:
            async with gate:
                return await self._request("POST", path, payload)

        tasks = [asyncio.ensure_future(one(p)) for p in payloads]
        if not tasks:
            return []
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # also when the caller itself is cancelled
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        return [t.result() for t in tasks]

    async def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> object:
        where = self._config.where(method, path)
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome: httpx.Response | httpx.HTTPError = await self._http.request(
                    method, f"{self.url}{path}", json=payload, headers=self._config.headers, timeout=self._timeout)
            except httpx.HTTPError as e:
                outcome = e
            body, delay = step(self._config, attempt, outcome, where)
            if delay is None:
                return body
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
