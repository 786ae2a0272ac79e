"""What an API worker does with a valid request: tokenise, cut into priced units, queue them, decode.

The model work goes to a queue per model (`Queue`): in this process (`single` layout, a service.batching.Batcher)
or in the model process that every API worker feeds (`split`, service.model_client.RemoteQueue). Tokenising
and decoding stay here. A large request is tokenised in chunks on this worker's CPU thread, each chunk's units
queued as soon as it is ready, so the model starts early and other requests' chunks and units interleave.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import itertools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from senpos.pos import PosTagger, Tagged, stitch
from senpos.sentiment import SentimentPredictor, sentiment_label
from service.batching import Unit, release_reservation
from service.units import Pricing, cut

INLINE_CHARS = 2_000  # smaller requests are tokenised on the event loop: a thread hop costs more than the work
CHUNK_CHARS = 20_000  # larger ones in chunks of about this size, on the CPU thread
TRIM_CHARS = 10_000  # after a request this large, give freed memory back to the system (glibc keeps it)


class Queue(Protocol):
    """A model's queue as a request sees it: service.batching.Batcher (`single`) or
    service.model_client.RemoteQueue (`split`)."""

    def admit(self, cost_s: float) -> AbstractContextManager[str | None]: ...

    def refusal(self, cost_s: float) -> str | None: ...

    def expected_wait_s(self, cost_s: float) -> float: ...

    async def run(self, units: Sequence[Unit], request: int | None = None) -> list[list]: ...


def _chunks(items: Sequence, sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    out, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and total + n > limit:
            out.append((start, i))
            start, total = i, 0
        total += n
    if len(items) > start:
        out.append((start, len(items)))
    return out


def _size(item: str | Sequence[str]) -> int:
    return len(item) if isinstance(item, str) else sum(map(len, item))


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if ctypes.util.find_library("c") else None


def trim_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them after a large request otherwise)."""
    if _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


class Pipeline:
    def __init__(self, english: SentimentPredictor, chinese: PosTagger, queues: Mapping[str, Queue],
                 pricing: Callable[[str], Pricing]):
        self.english, self.chinese, self.queues, self.pricing = english, chinese, queues, pricing
        self.cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise")
        self._requests = itertools.count()

    async def _on_cpu(self, size: int, fn: Callable, *args):
        if size <= INLINE_CHARS:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def _model(self, model: str, items: Sequence, lengths: Sequence[float], request: int) -> list:
        price = self.pricing(model)
        units = cut(items, lengths, price.cost, price.width)
        results = await self.queues[model].run(units, request)
        return [r for unit in results for r in unit]

    async def _chunked(self, items: Sequence, encode: Callable, model: str,
                       rows: Callable[[Any], tuple[Sequence, Sequence[float]]]) -> tuple[list, list]:
        """Encode chunk by chunk, queueing each chunk's model rows at once: (encoded items, model results),
        both in item order. `rows(encoded chunk) -> (model rows, their lengths)`."""
        request, tasks, encoded = next(self._requests), [], []
        sizes = [_size(x) for x in items]
        try:
            for a, b in _chunks(items, sizes, CHUNK_CHARS):
                chunk = await self._on_cpu(sum(sizes[a:b]), encode, items[a:b])
                encoded += chunk
                tasks.append(asyncio.ensure_future(self._model(model, *rows(chunk), request)))
            release_reservation()
            return encoded, [r for part in await asyncio.gather(*tasks) for r in part]
        finally:
            for t in tasks:
                t.cancel()
            if sum(sizes) > TRIM_CHARS:
                trim_memory()

    async def sentiment(self, texts: Sequence[str]) -> list[dict]:
        _, scores = await self._chunked(texts, self.english.encode_many, "sentiment",
                                        lambda seqs: (seqs, [len(s) for s in seqs]))
        return [{"label": sentiment_label(p), "score": float(p)} for p in scores]

    async def pos_tag(self, items: Sequence[str | list[str]]) -> list[dict]:
        tagger = self.chinese

        def encode(chunk: Sequence) -> list[tuple[list[str], list, list]]:
            return [(words, offsets, tagger.pieces(tagger.encode(words)))
                    for words, offsets in tagger.segment_many(chunk)]

        def rows(chunk: list) -> tuple[list, list[float]]:
            pieces = [p for _, _, cut_ in chunk for p, _, _ in cut_]
            return pieces, [tagger.steps(p) for p in pieces]

        encoded, scores = await self._chunked(items, encode, "pos", rows)
        return await self._on_cpu(sum(map(_size, items)), self._decode, encoded, scores)

    def _decode(self, encoded: list, scores: list[np.ndarray]) -> list[dict]:
        tagger = self.chinese
        stitched = stitch([c for _, _, c in encoded], scores, len(tagger.tags))
        return [Tagged(words, tagger.decode(s), offsets).as_json()
                for (words, offsets, _), s in zip(encoded, stitched, strict=True)]
