"""Service configuration from environment variables (read once, at import, by every process).

| variable | default | meaning |
|---|---|---|
| SENPOS_SENTIMENT_MODEL | models/sentiment | sentiment model directory |
| SENPOS_POS_MODEL | models/pos | POS model directory |
| SENPOS_MAX_ITEMS | 256 | items per request |
| SENPOS_MAX_TEXT_CHARS | 100000 | characters per text (or per word list, summed) |
| SENPOS_MAX_BODY_BYTES | 16777216 | request body size (413 above it) |
| SENPOS_API_WORKERS | 2 | worker processes (each validates, tokenises, batches and runs both models) |
| SENPOS_MODEL_THREADS | 1 | onnxruntime intra-op threads per model call (0 = all cores) |
| SENPOS_MODEL_CALLS | 1 | model calls in flight at once per worker and model, each on its own thread |
| SENPOS_MAX_BATCH_SIZE | 64 | adaptive batching: most items per model call |
| SENPOS_MAX_QUEUE_MS | 1000 | adaptive batching: expected queueing above which a request is refused (503) |
| SENPOS_MAX_CONCURRENCY | 1024 | requests in flight in the service (split over the workers) before 429 |
| SENPOS_TIMEOUT_S | 60 | per-request timeout |
| SENPOS_KEEPALIVE_REQUESTS | 100 | mean requests per connection before the client is asked to reconnect (0: never) |
| SENPOS_ACCESS_LOG | 0 | 1: one log line per answered request (refusals are only counted, in /metrics) |
| SENPOS_PROVIDER | auto | onnxruntime provider: auto, cuda or cpu |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVE_TARGET = "service.service:Senpos"  # `bentoml serve <this>`: make serve, the tests and the containers


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected an integer") from None


def _path(name: str, default: str) -> Path:
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else REPO / path


@dataclass(frozen=True)
class Settings:
    sentiment_model: Path
    pos_model: Path
    max_items: int
    max_text_chars: int
    max_body_bytes: int
    api_workers: int
    model_threads: int
    model_calls: int
    max_batch_size: int
    max_queue_ms: int
    max_concurrency: int
    timeout_s: int
    keepalive_requests: int
    access_log: bool

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            sentiment_model=_path("SENPOS_SENTIMENT_MODEL", "models/sentiment"),
            pos_model=_path("SENPOS_POS_MODEL", "models/pos"),
            max_items=_int("SENPOS_MAX_ITEMS", 256),
            max_text_chars=_int("SENPOS_MAX_TEXT_CHARS", 100_000),
            max_body_bytes=_int("SENPOS_MAX_BODY_BYTES", 16 * 2**20),
            api_workers=_int("SENPOS_API_WORKERS", 2),
            model_threads=_int("SENPOS_MODEL_THREADS", 1),
            model_calls=_int("SENPOS_MODEL_CALLS", 1),
            max_batch_size=_int("SENPOS_MAX_BATCH_SIZE", 64),
            max_queue_ms=_int("SENPOS_MAX_QUEUE_MS", 1000),
            max_concurrency=_int("SENPOS_MAX_CONCURRENCY", 1024),
            timeout_s=_int("SENPOS_TIMEOUT_S", 60),
            keepalive_requests=_int("SENPOS_KEEPALIVE_REQUESTS", 100),
            access_log=bool(_int("SENPOS_ACCESS_LOG", 0)),
        )


SETTINGS = Settings.from_env()
