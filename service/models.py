"""The models as an API worker uses them, chosen once at start: `LocalModels` (`single` layout: the model sessions
and their batching queues in this process) or `RemoteModels` (`split`: the queues in the model process, reached
over service/split/). Either way the worker keeps its own predictors for tokenising and decoding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from senpos.pos import PosTagger
from senpos.runtime import ModelLoadError
from senpos.sentiment import SentimentPredictor
from service.admission import Queue
from service.batching import Batcher
from service.metrics import BATCH_SIZE, DROPPED, ENDPOINTS, QUEUE_WAIT, SHED
from service.settings import SETTINGS
from service.split.client import ModelClient
from service.units import BYTES_PER_STEP, Pricing

log = logging.getLogger("senpos")


class Models(Protocol):
    """Both models as a request sees them: predictors to tokenise and decode with here, a queue per model
    ("sentiment", "pos") for the model work, and the price of that work."""

    sentiment: SentimentPredictor
    pos: PosTagger

    @property
    def queues(self) -> Mapping[str, Queue]: ...

    def pricing(self, model: str) -> Pricing: ...

    def providers(self) -> dict[str, str]:
        """model -> the onnxruntime provider its sessions run on."""
        ...

    async def start(self) -> None:
        """Ready to take requests (the split layout waits for the model process, which may still be loading)."""
        ...

    async def ready(self) -> bool:
        """Can take requests now (a readiness probe)."""
        ...


def load_models(provider: str = SETTINGS.provider, threads: int = SETTINGS.model_threads
                ) -> tuple[SentimentPredictor, PosTagger]:
    return (SentimentPredictor(SETTINGS.sentiment_model, threads=threads, provider=provider,
                               max_batch=SETTINGS.max_batch_size),
            PosTagger(SETTINGS.pos_model, threads=threads, provider=provider, max_batch=SETTINGS.max_batch_size))


def check_models() -> None:
    """Load both models once in the `bentoml serve` process, before any worker starts, so a missing or corrupt
    file or a mismatched vocabulary stops the server at start, naming the file (a failing worker would
    otherwise be restarted forever). On the CPU unless the GPU is required: then a CUDA that cannot start stops
    the server here too."""
    try:
        load_models(provider="cuda" if SETTINGS.provider == "cuda" else "cpu", threads=1)
    except ModelLoadError as e:
        raise SystemExit(f"senpos cannot start: {e}") from None


def model_queues(sentiment: SentimentPredictor, pos: PosTagger) -> tuple[dict[str, Batcher], dict[str, Pricing]]:
    """One batching queue per model, running these predictors' model calls, and each model's pricing."""

    def batcher(model: str, fn: Callable[[list], tuple[Any, float]]) -> Batcher:
        endpoint = ENDPOINTS[model]

        def record(items: int, waited_s: float, _running_s: float) -> None:
            BATCH_SIZE.labels(endpoint=endpoint).observe(items)
            QUEUE_WAIT.labels(endpoint=endpoint).observe(waited_s)

        return Batcher(fn, SETTINGS.max_batch_size, SETTINGS.max_queue_ms / 1000, SETTINGS.model_calls,
                       costed=True, on_batch=record, on_shed=SHED.labels(endpoint=endpoint).inc,
                       on_drop=DROPPED.labels(endpoint=endpoint).inc)

    queues = {"sentiment": batcher("sentiment", sentiment.predict_ids_costed),
              "pos": batcher("pos", pos.scores_pieces_costed)}
    pricing = {m: Pricing(p.cost, min(SETTINGS.max_batch_size, p.cost.max_rows), BYTES_PER_STEP[m])
               for m, p in (("sentiment", sentiment), ("pos", pos))}
    return queues, pricing


def warm_up(sentiment: SentimentPredictor, pos: PosTagger) -> None:
    sentiment.predict(["warm-up review"] * 4)
    pos.tag(["预热句子。", ["预热"]])


class LocalModels:
    """`single` layout: both models' sessions and batching queues in this process."""

    def __init__(self) -> None:
        self.sentiment, self.pos = load_models()
        log.info("models loaded: sentiment on %s, pos on %s", self.sentiment.provider, self.pos.provider)
        warm_up(self.sentiment, self.pos)
        self.queues, self._pricing = model_queues(self.sentiment, self.pos)

    def pricing(self, model: str) -> Pricing:
        return self._pricing[model]

    def providers(self) -> dict[str, str]:
        return {"sentiment": self.sentiment.provider, "pos": self.pos.provider}

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return True


class RemoteModels:
    """`split` layout: the queues are in the model process at `address`; here the predictors only tokenise."""

    def __init__(self, address: str) -> None:
        self.sentiment, self.pos = load_models(provider="cpu", threads=1)
        self.sentiment.encode_many(["warm-up review"])  # spaCy's tokenizer loads on first use
        self.pos.pieces(self.pos.encode(self.pos.segment("预热句子。")[0]))
        self.client = ModelClient(address, SETTINGS.max_queue_ms / 1000,
                                  {m: SHED.labels(endpoint=e).inc for m, e in ENDPOINTS.items()})
        self.queues = self.client.queues

    def pricing(self, model: str) -> Pricing:
        return self.client.pricing[model]  # the model process's, from its hello

    def providers(self) -> dict[str, str]:
        return self.client.providers

    async def start(self, patience_s: float = 300) -> None:
        deadline = time.monotonic() + patience_s
        while not self.client.connected:
            try:
                await self.client.connect()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def ready(self) -> bool:
        try:
            await self.client.connect()  # a probe reconnects a worker that lost the model process
        except Exception:
            return False
        return True


def open_models(layout: str) -> Models:
    return RemoteModels(SETTINGS.resolved_model_address()) if layout == "split" else LocalModels()
