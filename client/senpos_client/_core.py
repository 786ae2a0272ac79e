"""What the sync and async clients share: request shapes, chunking, retry policy, response parsing."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from senpos_client.errors import ServerError, ServiceUnavailable, Timeout, ValidationError

RETRY_STATUSES = frozenset({429, 503})
RETRY_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
PosItem = str | Sequence[str]


@dataclass(frozen=True)
class SentimentResult:
    label: str  # "positive" or "negative"
    score: float  # P(positive)


@dataclass(frozen=True)
class PosResult:
    words: list[str]
    tags: list[str]  # PFR tagset
    offsets: list[tuple[int, int]]  # [start, end) into the input string (or the words' concatenation)
    upos: list[str] | None = None  # Universal POS tags (the server sends them)


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


def chunks(items: Sequence, size: int) -> list[Sequence]:
    if size < 1:
        raise ValueError("max_items must be at least 1")
    return [items[i : i + size] for i in range(0, len(items), size)]


def pos_payload(items: Sequence[PosItem]) -> dict:
    return {"texts": [item if isinstance(item, str) else list(item) for item in items]}


def raise_for_response(response: httpx.Response) -> None:
    """Turn a non-2xx answer into a precise exception (retryable statuses are handled by the caller)."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # some server errors come wrapped in a list
    message = body.get("error", str(body)) if isinstance(body, dict) else str(body)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # pydantic errors: say where and what
        parts = [f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail if isinstance(d, dict)]
        message = f"{message}: " + "; ".join(parts) if parts else message
    if 400 <= response.status_code < 500:
        raise ValidationError(response.status_code, message, detail)
    raise ServerError(response.status_code, message)


def parse_sentiment(body: object) -> list[SentimentResult]:
    try:
        return [SentimentResult(label=str(r["label"]), score=float(r["score"])) for r in body]  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError) as e:
        raise ServerError(200, f"unexpected /sentiment answer: {e}") from e


def parse_pos(body: object) -> list[PosResult]:
    try:
        return [PosResult(words=list(r["words"]), tags=list(r["tags"]), offsets=[tuple(o) for o in r["offsets"]],
                          upos=list(r["upos"]) if r.get("upos") is not None else None) for r in body]  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError) as e:
        raise ServerError(200, f"unexpected /pos-tag answer: {e}") from e


def step(policy: RetryPolicy, attempt: int, outcome: httpx.Response | httpx.HTTPError, where: str
         ) -> tuple[bool, object]:
    """One attempt's outcome -> (True, parsed JSON body) or (False, seconds to wait before retrying).

    Raises when there is nothing left to try: Timeout, ValidationError (4xx, never retried),
    ServiceUnavailable (503/429/connection errors through every retry) or ServerError.
    """
    if isinstance(outcome, httpx.TimeoutException):
        raise Timeout(f"{where}: no answer within the timeout ({outcome})") from outcome
    if isinstance(outcome, RETRY_ERRORS):
        status, reason, retry_after = None, f"{where}: cannot connect ({outcome})", None
    elif isinstance(outcome, httpx.HTTPError):
        raise ServerError(0, f"{where}: {outcome}") from outcome
    elif outcome.status_code in RETRY_STATUSES:
        status, reason = outcome.status_code, f"{where} answered {outcome.status_code}"
        retry_after = outcome.headers.get("retry-after")
    else:
        raise_for_response(outcome)
        try:
            return True, outcome.json()
        except ValueError as e:
            raise ServerError(outcome.status_code, f"{where}: answer is not JSON") from e
    if attempt > policy.retries:
        raise ServiceUnavailable(reason, attempt, status)
    return False, policy.delay(attempt, retry_after)
