"""Service configuration from environment variables (read once, at import, by every process).

`CONFIG` is the one table of them, defaults included: the README's configuration table is printed from it
(`python -m service.settings`), and tests/test_settings.py fails when the two differ.

Each model's directory: SENPOS_*_MODEL when set, else the latest `senpos-sentiment` / `senpos-pos` in BentoML's
model store when it has one (a built Bento carries its own; `make models-import` fills $BENTOML_HOME's), else
the repository's models/sentiment and models/pos (service/model_store.py).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVE_TARGET = "service.service:Senpos"  # `bentoml serve <this>`: make serve, the tests and the containers

CONFIG: tuple[tuple[str, str, str], ...] = (  # variable, default, meaning
    ("SENPOS_SENTIMENT_MODEL", "models/sentiment", "sentiment model directory; unset, the model store's latest "
     "`senpos-sentiment` is used when there is one (`make models-import`, a built Bento)"),
    ("SENPOS_POS_MODEL", "models/pos", "POS model directory; unset, the model store's latest `senpos-pos` when "
     "there is one"),
    ("SENPOS_MAX_ITEMS", "256", "items per request (413 above it)"),
    ("SENPOS_MAX_TEXT_CHARS", "100000", "characters per text, or per word list (413 above it)"),
    ("SENPOS_MAX_REQUEST_CHARS", "sentiment=200000,pos=16000",
     "characters per request, all items together (413 above it); one number sets both"),
    ("SENPOS_MAX_BODY_BYTES", "16777216", "request body size (413 above it)"),
    ("SENPOS_API_KEY", "", "one key or a comma-separated list: /sentiment, /pos-tag and /info then need "
     "`Authorization: Bearer <key>` (401 otherwise); probes, /metrics, /docs and the page stay open"),
    ("SENPOS_CORS_ORIGINS", "", "browser origins allowed to call the API, comma-separated, or `*`"),
    ("SENPOS_API_WORKERS", "2",
     "API worker processes (each validates, tokenises and decodes; in `single` it also runs the models)"),
    ("SENPOS_LAYOUT", "auto", "`single`: each API worker has its own model queues; `split`: one model process "
     "(`SenposModels`) with one queue per model, fed by every worker; `auto`: `split` on CUDA, else `single`"),
    ("SENPOS_MODEL_ADDRESS", "", "`split`: where the model process listens, `unix:///path` or `tcp://host:port` "
     "(default: a socket of the server; model pods elsewhere: docs/design.md)"),
    ("SENPOS_PROVIDER", "auto", "onnxruntime provider: `auto` (CUDA if onnxruntime-gpu and a GPU are there), "
     "`cuda`, `cpu`"),
    ("SENPOS_MODEL_THREADS", "1", "onnxruntime intra-op threads per model call (0 = all cores)"),
    ("SENPOS_MODEL_CALLS", "1",
     "model calls in flight at once per model queue (raise it on a GPU or with spare cores)"),
    ("SENPOS_MAX_BATCH_SIZE", "64", "adaptive batching: most items taken from the queue per model call"),
    ("SENPOS_MAX_QUEUE_MS", "1000", "refuse (503) a request when the others' work it would wait for is expected to "
     "take longer (or longer than its own work, for a large request); a model call takes at most a quarter of it"),
    ("SENPOS_MAX_CONCURRENCY", "1024",
     "requests in flight in the service (BentoML splits it over the workers) before 429: a backstop"),
    ("SENPOS_TIMEOUT_S", "60", "request timeout (504)"),
    ("SENPOS_KEEPALIVE_REQUESTS", "100", "mean requests per connection before the client is asked to reconnect "
     "(also after 2 s of work on one connection; only while its worker serves other connections too: spreads "
     "connections over the workers; 1: after every request; 0: never)"),
    ("SENPOS_ACCESS_LOG", "0", "1: one log line per answered request; load-shedding refusals are left out and only "
     "counted in /metrics (off by default: under overload the log line costs more than the refusal)"),
)
_DEFAULTS = {name: default for name, default, _ in CONFIG}


def markdown_table() -> str:
    rows = [f"| `{name}` | {f'`{default}`' if default else '(none)'} | {meaning} |"
            for name, default, meaning in CONFIG]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


def _raw(name: str) -> str:
    return (os.environ.get(name) or "").strip() or _DEFAULTS[name]


def _int(name: str) -> int:
    raw = _raw(name)
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected an integer") from None


def _per_endpoint(name: str) -> dict[str, int]:
    """One integer for every endpoint, or `sentiment=N,pos=M` (either may be left out)."""
    default = {k: int(v) for k, _, v in (part.partition("=") for part in _DEFAULTS[name].split(","))}
    raw = _raw(name)
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
    raw = _raw(name).lower()
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def _list(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in _raw(name).split(",") if part.strip())


def _path(name: str) -> Path:
    path = Path(_raw(name))
    return path if path.is_absolute() else REPO / path


def _model_dir(name: str, model: str) -> tuple[Path, str]:
    """(directory, the store's tag or "" when the directory is not the store's): see the module docstring."""
    if os.environ.get(name):
        return _path(name), ""
    from service.model_store import stored_model  # imports bentoml: only when no directory is given

    stored = stored_model(model)
    return (Path(stored.path), str(stored.tag)) if stored else (_path(name), "")


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
    api_keys: tuple[str, ...]
    cors_origins: tuple[str, ...]

    @classmethod
    def from_env(cls) -> Settings:
        (sentiment_model, sentiment_tag), (pos_model, pos_tag) = (
            _model_dir("SENPOS_SENTIMENT_MODEL", "sentiment"),
            _model_dir("SENPOS_POS_MODEL", "pos"))
        return cls(
            sentiment_model=sentiment_model,
            pos_model=pos_model,
            store_tags={m: tag for m, tag in (("sentiment", sentiment_tag), ("pos", pos_tag)) if tag},
            max_items=_int("SENPOS_MAX_ITEMS"),
            max_text_chars=_int("SENPOS_MAX_TEXT_CHARS"),
            max_body_bytes=_int("SENPOS_MAX_BODY_BYTES"),
            api_workers=_int("SENPOS_API_WORKERS"),
            model_threads=_int("SENPOS_MODEL_THREADS"),
            model_calls=_int("SENPOS_MODEL_CALLS"),
            max_batch_size=_int("SENPOS_MAX_BATCH_SIZE"),
            max_queue_ms=_int("SENPOS_MAX_QUEUE_MS"),
            max_concurrency=_int("SENPOS_MAX_CONCURRENCY"),
            timeout_s=_int("SENPOS_TIMEOUT_S"),
            keepalive_requests=_int("SENPOS_KEEPALIVE_REQUESTS"),
            access_log=bool(_int("SENPOS_ACCESS_LOG")),
            provider=_choice("SENPOS_PROVIDER", ("auto", "cuda", "cpu")),
            layout=_choice("SENPOS_LAYOUT", ("auto", "single", "split")),
            model_address=_raw("SENPOS_MODEL_ADDRESS"),
            max_request_chars=_per_endpoint("SENPOS_MAX_REQUEST_CHARS"),
            api_keys=_list("SENPOS_API_KEY"),
            cors_origins=_list("SENPOS_CORS_ORIGINS"),
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
        from service.bentoml_seam import serve_socket_dir

        folder = serve_socket_dir() or tempfile.gettempdir()
        return f"unix://{folder}/senpos-models-{os.getppid()}.sock"


SETTINGS = Settings.from_env()


if __name__ == "__main__":
    print(markdown_table())
