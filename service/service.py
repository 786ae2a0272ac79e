"""senpos HTTP API: POST /sentiment and POST /pos-tag.

Two BentoML services: `Senpos` (the API; several worker processes validate and tokenise, which is CPU
work) calls `Models` (one process; onnxruntime behind adaptive batching) through `bentoml.depends`, so
tokenisation never holds up the model and concurrent requests share batches.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import bentoml
import numpy as np
from bentoml.exceptions import ServiceUnavailable

from senpos.pos import PosTagger
from senpos.pos_tags import to_upos
from senpos.runtime import ModelLoadError
from senpos.sentiment import SentimentPredictor
from service.compat import defer_session_close
from service.middleware import BodyLimitMiddleware, JsonOnlyMiddleware, RetryAfterMiddleware, docs_app
from service.schemas import PosItems, Texts
from service.settings import SETTINGS

log = logging.getLogger("senpos")
defer_session_close()  # see service/compat.py: BentoML would otherwise drop in-flight calls to Models


def check_models() -> None:
    """Load both models once in the `bentoml serve` process, before any worker starts, so a missing or
    corrupt file or a mismatched vocabulary stops the server at start, naming the file and the problem
    (a failing worker would otherwise be restarted forever)."""
    try:
        SentimentPredictor(SETTINGS.sentiment_model, threads=1, provider="cpu")
        PosTagger(SETTINGS.pos_model, threads=1, provider="cpu")
    except ModelLoadError as e:
        raise SystemExit(f"senpos cannot start: {e}") from None


if bentoml.server_context.worker_index is None:  # the serving process itself, not one of its workers
    check_models()
BATCHING = {"batchable": True, "max_batch_size": SETTINGS.max_batch_size, "max_latency_ms": SETTINGS.max_latency_ms}


async def model_call(call):
    """Await a call to the Models service; if it cannot be reached (it is restarting after a crash, or shutting
    down before this worker), answer 503 + Retry-After instead of a 500: the request may simply be retried."""
    try:
        return await call
    except aiohttp.ClientConnectionError as e:
        raise ServiceUnavailable("the model service is restarting or shutting down; retry shortly") from e


@bentoml.service(workers=1, traffic={"timeout": SETTINGS.timeout_s})
class Models:
    """The ONNX models behind adaptive batching; inputs are already tokenised ids."""

    def __init__(self) -> None:
        self.sentiment_model = SentimentPredictor(SETTINGS.sentiment_model, threads=SETTINGS.model_threads,
                                                  max_batch=SETTINGS.max_batch_size)
        self.pos_model = PosTagger(SETTINGS.pos_model, threads=SETTINGS.model_threads,
                                   max_batch=SETTINGS.max_batch_size)
        log.info("models loaded: sentiment on %s, pos on %s", self.sentiment_model.provider, self.pos_model.provider)
        self.sentiment_model.predict(["warm-up review"] * 4)
        self.pos_model.tag(["预热句子。", ["预热"]])
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.api(**BATCHING)
    def score_ids(self, seqs: list[list[int]]) -> list[float]:
        return self.sentiment_model.predict_ids([np.asarray(s, dtype=np.int64) for s in seqs]).tolist()

    @bentoml.api(**BATCHING)
    def tag_ids(self, sentences: list[dict]) -> list[list[str]]:
        encoded = [(np.asarray(s["words"], dtype=np.int64), [np.asarray(c, dtype=np.int64) for c in s["chars"]],
                    np.asarray(s["lex"], dtype=np.int64)) for s in sentences]
        return self.pos_model.tag_encoded(encoded)


@bentoml.service(workers=SETTINGS.api_workers,
                 traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency})
class Senpos:
    """English sentiment and Chinese POS tagging."""

    models = bentoml.depends(Models)

    def __init__(self) -> None:
        # The API processes tokenise: they load the vocabularies and the jieba dictionary, not the models' weights.
        self.english = SentimentPredictor(SETTINGS.sentiment_model, threads=1)
        self.chinese = PosTagger(SETTINGS.pos_model, threads=1)

    @bentoml.api(route="/sentiment")
    async def sentiment(self, texts: Texts) -> list[dict]:
        """P(positive) for each English text, in order: `{"label": "positive"|"negative", "score": p}`."""
        seqs = await asyncio.to_thread(self.english.encode_many, texts)
        scores = await model_call(self.models.to_async.score_ids([s.tolist() for s in seqs]))
        return [{"label": "positive" if p >= 0.5 else "negative", "score": p} for p in scores]

    @bentoml.api(route="/pos-tag")
    async def pos_tag(self, texts: PosItems, upos: bool = False) -> list[dict]:
        """Words, PFR tags and [start, end) offsets for each item; `upos: true` adds Universal POS tags."""
        segmented, encoded = await asyncio.to_thread(self._segment, texts)
        tags = await model_call(self.models.to_async.tag_ids(encoded))
        out = []
        for (words, offsets), t in zip(segmented, tags, strict=True):
            item = {"words": words, "tags": t, "offsets": [list(o) for o in offsets]}
            if upos:
                item["upos"] = [to_upos(x) for x in t]
            out.append(item)
        return out

    def _segment(self, items):
        segmented = [self.chinese.segment(item) for item in items]
        encoded = []
        for words, _ in segmented:
            w, c, lex = self.chinese.encode(words)
            encoded.append({"words": w.tolist(), "chars": [x.tolist() for x in c], "lex": lex.tolist()})
        return segmented, encoded


Senpos.add_asgi_middleware(JsonOnlyMiddleware)
Senpos.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
Senpos.add_asgi_middleware(RetryAfterMiddleware, seconds=1)
Senpos.mount_asgi_app(docs_app(lambda: Senpos.openapi_spec), path="/docs", name="docs")
