"""What the sync and async clients share: settings from arguments and the environment, request shapes, splitting
long lists to the server's limits, retry policy, response parsing and errors."""

from __future__ import annotations

import bisect
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import httpx

from senpos_client.errors import (
    AuthenticationError,
    NotFoundError,
    SenposError,
    ServerError,
    ServiceUnavailable,
    Timeout,
    ValidationError,
)

VERSION = "0.2.0"
DEFAULT_URL = "http://localhost:3000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ITEMS = 256  # the server's default items per request (SENPOS_MAX_ITEMS)
# The server's default characters per request, all items together (SENPOS_MAX_REQUEST_CHARS), by model.
DEFAULT_MAX_REQUEST_CHARS = {"sentiment": 200_000, "pos": 16_000}
ENDPOINTS = {"sentiment": "/sentiment", "pos": "/pos-tag"}  # model -> its path
RETRY_STATUSES = frozenset({429, 503})
RETRY_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
PosItem = str | Sequence[str]
Label = Literal["positive", "negative"]
TimeoutArg = float | httpx.Timeout | None
T = TypeVar("T")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a Bearer header can carry: visible ASCII, no spaces


@dataclass(frozen=True)
class SentimentResult:
    label: Label
    score: float  # P(positive)


@dataclass(frozen=True)
class PosResult:
    words: list[str]
    tags: list[str]  # PFR tagset
    offsets: list[tuple[int, int]]  # [start, end) into the input string (or the words' concatenation)
    upos: list[str] | None = None  # Universal POS tags (the server sends them)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str  # changes whenever any of the model's files does
    sha256: str  # of its model.onnx
    metrics: dict[str, float]  # headline figures from its model card
    provider: str  # the onnxruntime execution provider it runs on


@dataclass(frozen=True)
class ServiceInfo:
    version: str  # of the senpos server
    models: dict[str, ModelInfo]  # "sentiment", "pos"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff: float = 0.25  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After if it gave one,
        else exponential backoff with full jitter."""
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff) + random.uniform(0, self.backoff)
            except ValueError:
                pass
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


@dataclass(frozen=True, repr=False)
class Settings:
    """A client's resolved settings. `secrets` are the strings no error message may show (the API key)."""

    url: str
    headers: dict[str, str]
    secrets: tuple[str, ...]
    retry: RetryPolicy
    max_items: int
    max_request_chars: dict[str, int]  # model ("sentiment", "pos") -> characters per request

    def __repr__(self) -> str:  # the headers hold the key: say only whether there is one
        return f"Settings(url={self.url!r}, api_key={'set' if self.secrets else None})"

    def where(self, method: str, path: str) -> str:
        return f"{method} {self.url}{path}"


def resolve_url(url: str | None) -> str:
    """`url`, else $SENPOS_URL, else http://localhost:3000, checked and without a trailing slash."""
    raw = (url if url is not None else os.environ.get("SENPOS_URL") or DEFAULT_URL).strip()
    problem = f"not a usable senpos URL: {raw!r} (expected http://host:port or https://host)"
    if not raw or any(c.isspace() for c in raw):
        raise ValueError(problem)
    try:
        parsed = httpx.URL(raw)
        port = parsed.port  # raises for a port that is not a number
    except (httpx.InvalidURL, ValueError):
        raise ValueError(problem) from None
    if parsed.scheme not in ("http", "https") or not parsed.host or not (port is None or 0 < port < 65536):
        raise ValueError(problem)
    return raw.rstrip("/")


def resolve_api_key(api_key: str | None) -> str | None:
    """`api_key`, else the first key in $SENPOS_API_KEY (the server's variable may list several, comma-separated;
    any one opens the door). An empty string means no key, even when the variable is set."""
    if api_key is None:
        api_key = next((k.strip() for k in os.environ.get("SENPOS_API_KEY", "").split(",") if k.strip()), "")
    if api_key and not _TOKEN.fullmatch(api_key):
        raise ValueError("the API key must be printable ASCII without spaces")  # never the key itself
    return api_key or None


def resolve_max_request_chars(value: int | Mapping[str, int] | None) -> dict[str, int]:
    """Characters per request by model, as the server's SENPOS_MAX_REQUEST_CHARS gives them: None for its
    defaults, one number for both, or {"sentiment": N, "pos": M} (either may be left out)."""
    limits = dict(DEFAULT_MAX_REQUEST_CHARS)
    if isinstance(value, Mapping):
        unknown = sorted(map(str, set(value) - set(limits)))
        if unknown:
            raise ValueError(f"max_request_chars: unknown model {', '.join(map(repr, unknown))} (expected "
                             f"{' and '.join(map(repr, limits))})")
        limits.update(value)
    elif value is not None:
        limits = dict.fromkeys(limits, value)
    for model, limit in limits.items():
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError(f"max_request_chars: expected an int for {model!r}, got {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"max_request_chars must be at least 1, got {limit} for {model!r}")
    return limits


def settings(url: str | None, api_key: str | None, headers: Mapping[str, str] | None, retries: int,
             backoff: float, max_items: int, max_request_chars: int | Mapping[str, int] | None = None
             ) -> Settings:
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    key = resolve_api_key(api_key)
    merged = {"user-agent": f"senpos-client/{VERSION}", **{k.lower(): v for k, v in (headers or {}).items()}}
    if key and "authorization" not in merged:
        merged["authorization"] = f"Bearer {key}"
    secrets = tuple(s for s in (key, merged.get("authorization")) if s)
    return Settings(resolve_url(url), merged, secrets, RetryPolicy(retries=retries, backoff=backoff), max_items,
                    resolve_max_request_chars(max_request_chars))


def item_chars(item: object) -> int:
    """The characters an item counts for, as the server counts them: a text's, or its words' together."""
    if isinstance(item, str):
        return len(item)
    try:
        return sum(len(w) for w in cast("Iterable[Sized]", item))
    except TypeError:
        return 0  # not a text: the server says what is wrong with it


def too_long(index: int, chars: int, limit: int, endpoint: str, option: str = "pass max_request_chars=") -> str:
    return (f"texts[{index}] has {chars} characters, more than the {limit} one {endpoint} request may hold (the "
            f"server's SENPOS_MAX_REQUEST_CHARS; {option} if the server sets it otherwise): a text cannot be split "
            "across requests, so nothing was sent")


def plan(items: Sequence[T], max_items: int, max_chars: int, endpoint: str) -> list[list[T]]:
    """`items` as the consecutive requests that keep to the server's limits: at most `max_items` items
    (SENPOS_MAX_ITEMS) and `max_chars` characters in all (SENPOS_MAX_REQUEST_CHARS) each.

    An item over `max_chars` on its own fits no request: ValidationError naming it (status None, `detail`
    {"index", "chars", "limit", "endpoint"}), raised before any request is sent.
    """
    if max_items < 1 or max_chars < 1:
        raise ValueError("max_items and max_request_chars must be at least 1")
    requests: list[list[T]] = []
    current: list[T] = []
    total = 0
    for index, item in enumerate(items):
        size = item_chars(item)
        if size > max_chars:
            raise ValidationError(None, too_long(index, size, max_chars, endpoint),
                                  {"index": index, "chars": size, "limit": max_chars, "endpoint": endpoint})
        if current and (len(current) >= max_items or total + size > max_chars):
            requests.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        requests.append(current)
    return requests


DOCUMENT_ENDS = "。！？；…\n"  # a long text is cut after one of these (the end of a sentence or a line)


def cut_document(text: str, limit: int) -> list[tuple[int, int]]:
    """[start, end) parts of `text`, each at most `limit` characters, cut after sentence ends; a sentence longer
    than `limit` is cut inside, `limit` characters at a time."""
    ends = [i + 1 for i, c in enumerate(text) if c in DOCUMENT_ENDS]
    parts, start = [], 0
    while len(text) - start > limit:
        k = bisect.bisect_right(ends, start + limit) - 1
        end = ends[k] if k >= 0 and ends[k] > start else start + limit
        parts.append((start, end))
        start = end
    parts.append((start, len(text)))
    return parts


def split_documents(items: Sequence[PosItem], limit: int) -> tuple[list[PosItem], list[tuple[int, int]]]:
    """The items to send: each text over `limit` characters as its parts (`cut_document`), the rest as they are;
    and for each item sent, (the index of the item it is part of, where the part starts in it)."""
    parts: list[PosItem] = []
    owners: list[tuple[int, int]] = []
    for index, item in enumerate(items):
        if isinstance(item, str) and len(item) > limit:
            for start, end in cut_document(item, limit):
                parts.append(item[start:end])
                owners.append((index, start))
        else:
            parts.append(item)
            owners.append((index, 0))
    return parts, owners


def join_documents(results: Sequence[PosResult], owners: Sequence[tuple[int, int]]) -> list[PosResult]:
    """One result per item, from its parts' results in order (`split_documents`), offsets into the whole text."""
    grouped: dict[int, list[tuple[int, PosResult]]] = {}
    for (index, start), result in zip(owners, results, strict=True):
        grouped.setdefault(index, []).append((start, result))
    joined = []
    for index in sorted(grouped):
        parts = grouped[index]
        if len(parts) == 1:
            joined.append(parts[0][1])
            continue
        upos = [u for _, r in parts for u in (r.upos or [])] if all(r.upos is not None for _, r in parts) else None
        joined.append(PosResult(words=[w for _, r in parts for w in r.words],
                                tags=[t for _, r in parts for t in r.tags],
                                offsets=[(a + start, b + start) for start, r in parts for a, b in r.offsets],
                                upos=upos))
    return joined


def pos_payload(items: Sequence[PosItem]) -> dict[str, Any]:
    return {"texts": [item if isinstance(item, str) else list(item) for item in items]}


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def read_error(response: httpx.Response, secrets: Sequence[str] = ()) -> tuple[str, object, str | None]:
    """An error answer's (message, structured detail, request id): the id from `x-request-id`, else the body."""
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500] or response.reason_phrase}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # some server errors come wrapped in a list
    message = str(body.get("error", body)) if isinstance(body, dict) else str(body)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # pydantic errors: say where and what
        parts = [f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail if isinstance(d, dict)]
        message = f"{message}: " + "; ".join(parts) if parts else message
    body_id = body.get("request_id") if isinstance(body, dict) else None
    return redact(message, secrets), detail, response.headers.get("x-request-id") or (str(body_id) if body_id else None)


def error_for(response: httpx.Response, where: str, secrets: Sequence[str] = ()) -> SenposError:
    """A non-2xx answer as a precise exception (the caller retries the retryable statuses first)."""
    message, detail, request_id = read_error(response, secrets)
    status = response.status_code
    if status in (401, 403):
        hint = ("set SENPOS_API_KEY or pass api_key=" if status == 401 and "authorization" not in
                {k.lower() for k in response.request.headers} else "check the key in SENPOS_API_KEY / api_key=")
        return AuthenticationError(f"{where}: {message}", status=status, request_id=request_id, hint=hint)
    if status in (404, 405):
        return NotFoundError(f"{where}: {message}; is this the URL of a senpos server?", status=status,
                             request_id=request_id)
    if 400 <= status < 500:
        return ValidationError(status, message, detail, request_id=request_id)
    return ServerError(status, f"{where}: {message}", request_id=request_id)


def _rows(body: object, where: str) -> list[Any]:
    if not isinstance(body, list):
        raise ServerError(200, f"unexpected {where} answer: not a list")
    return body


def parse_sentiment(body: object) -> list[SentimentResult]:
    try:
        results = [SentimentResult(label=r["label"], score=float(r["score"])) for r in _rows(body, "/sentiment")]
    except (TypeError, KeyError, ValueError) as e:
        raise ServerError(200, f"unexpected /sentiment answer: {e}") from e
    if any(r.label not in ("positive", "negative") for r in results):
        raise ServerError(200, "unexpected /sentiment answer: a label other than positive or negative")
    return results


def parse_pos(body: object) -> list[PosResult]:
    try:
        return [PosResult(words=list(r["words"]), tags=list(r["tags"]), offsets=[tuple(o) for o in r["offsets"]],
                          upos=list(r["upos"]) if r.get("upos") is not None else None) for r in _rows(body, "/pos-tag")]
    except (TypeError, KeyError, ValueError) as e:
        raise ServerError(200, f"unexpected /pos-tag answer: {e}") from e


def parse_info(body: object) -> ServiceInfo:
    try:
        models = {name: ModelInfo(name=m["name"], version=m["version"], sha256=m["sha256"],
                                  metrics={k: float(v) for k, v in m["metrics"].items()}, provider=m["provider"])
                  for name, m in body["models"].items()}  # type: ignore[index]
        return ServiceInfo(version=str(body["version"]), models=models)  # type: ignore[index]
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise ServerError(200, f"unexpected /info answer: {e}") from e


def step(config: Settings, attempt: int, outcome: httpx.Response | httpx.HTTPError, where: str
         ) -> tuple[object, float | None]:
    """One attempt's outcome -> (parsed JSON body, None), or (None, seconds to wait before retrying).

    Raises when there is nothing left to try: Timeout, AuthenticationError, NotFoundError, ValidationError
    (4xx, never retried), ServiceUnavailable (503/429/connection errors through every retry) or ServerError.
    """
    request_id = None
    if isinstance(outcome, httpx.TimeoutException):
        raise Timeout(f"{where}: no answer within the timeout ({type(outcome).__name__})") from outcome
    if isinstance(outcome, RETRY_ERRORS):
        status, reason, retry_after = None, f"{where}: cannot connect ({outcome})", None
    elif isinstance(outcome, httpx.HTTPError):
        raise ServerError(0, redact(f"{where}: {outcome}", config.secrets)) from outcome
    elif outcome.status_code in RETRY_STATUSES:
        message, _, request_id = read_error(outcome, config.secrets)
        status, reason = outcome.status_code, f"{where} answered {outcome.status_code}: {message}"
        retry_after = outcome.headers.get("retry-after")
    elif not outcome.is_success:
        raise error_for(outcome, where, config.secrets)
    else:
        try:
            return outcome.json(), None
        except ValueError as e:
            raise ServerError(outcome.status_code, f"{where}: answer is not JSON",
                              request_id=outcome.headers.get("x-request-id")) from e
    if attempt > config.retry.retries:
        raise ServiceUnavailable(reason, attempt, status, request_id=request_id)
    return None, config.retry.delay(attempt, retry_after)
