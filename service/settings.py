"""Service configuration from environment variables (read once, at import, by every process).

| variable | default | meaning |
|---|---|---|
| SENPOS_SENTIMENT_MODEL | (see below) | sentiment model directory |
| SENPOS_POS_MODEL | (see below) | POS model directory |
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
| SENPOS_LAYOUT | auto | single: each API worker runs the models; split: one model process for all; auto: CUDA: split |
| SENPOS_MODEL_ADDRESS | (a local socket) | split: the model process's unix:///path or tcp://host:port |
| SENPOS_MAX_REQUEST_CHARS | sentiment=200000,pos=16000 | characters per request, all items together (413 above) |

Each model's directory: SENPOS_*_MODEL when set, else the latest `senpos-sentiment` / `senpos-pos` in BentoML's
model store when it has one (a built Bento carries its own; `make models-import` fills $BENTOML_HOME's), else
the repository's models/sentiment and models/pos (service/model_store.py).
"""

from __future__ import annotations

import json
import os
import tempfile
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


def _per_endpoint(name: str, default: dict[str, int]) -> dict[str, int]:
    """One integer for every endpoint, or `sentiment=N,pos=M` (either may be left out)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return dict(default)
    if raw.isdigit():
        return dict.fromkeys(default, int(raw))
    out = dict(default)
    for part in raw.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in default or not value.strip().isdigit():
            raise SystemExit(f"{name}={raw!r}: expected an integer or {','.join(k + '=N' for k in default)}")
        out[key.strip()] = int(value)
    return out


def _choice(name: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def _path(name: str, default: str) -> Path:
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else REPO / path


def _model_dir(name: str, model: str, default: str) -> tuple[Path, str]:
    """(directory, the store's tag or "" when the directory is not the store's): see the module docstring."""
    if os.environ.get(name):
        return _path(name, default), ""
    from service.model_store import stored_model  # imports bentoml: only when no directory is given

    stored = stored_model(model)
    return (Path(stored.path), str(stored.tag)) if stored else (REPO / default, "")


@dataclass(frozen=True)
class Settings:
    sentiment_model: Path
    pos_model: Path
    store_tags: dict[str, str]  # model -> its tag in BentoML's model store, for the models served from there
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
    provider: str
    layout: str
    model_address: str
    max_request_chars: dict[str, int]  # endpoint route -> limit

    @classmethod
    def from_env(cls) -> Settings:
        (sentiment_model, sentiment_tag), (pos_model, pos_tag) = (
            _model_dir("SENPOS_SENTIMENT_MODEL", "sentiment", "models/sentiment"),
            _model_dir("SENPOS_POS_MODEL", "pos", "models/pos"))
        return cls(
            sentiment_model=sentiment_model,
            pos_model=pos_model,
            store_tags={m: tag for m, tag in (("sentiment", sentiment_tag), ("pos", pos_tag)) if tag},
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
            provider=_choice("SENPOS_PROVIDER", ("auto", "cuda", "cpu")),
            layout=_choice("SENPOS_LAYOUT", ("auto", "single", "split")),
            model_address=os.environ.get("SENPOS_MODEL_ADDRESS", ""),
            max_request_chars=_per_endpoint("SENPOS_MAX_REQUEST_CHARS", {"sentiment": 200_000, "pos": 16_000}),
        )

    def resolved_layout(self) -> str:
        """`auto` is `split` where the models run on CUDA (a GPU must be fed by one queue), else `single`."""
        if self.layout != "auto":
            return self.layout
        from senpos.runtime import cuda_available

        return "split" if self.provider != "cpu" and cuda_available() else "single"

    def resolved_model_address(self) -> str:
        """The model process's address: by default a socket in the directory `bentoml serve` keeps for its own
        sockets (removed when it stops), else in the temp directory, named after it (the workers' parent)."""
        if self.model_address:
            return self.model_address
        uris = json.loads(os.environ.get("BENTOML_RUNNER_MAP") or "{}")
        home = next((u[len("unix://") :] for u in uris.values() if u.startswith("unix://")), None)
        folder = os.path.dirname(home) if home else tempfile.gettempdir()
        return f"unix://{folder}/senpos-models-{os.getppid()}.sock"


SETTINGS = Settings.from_env()
