"""What an API worker does with a valid request: tokenise, cut into priced units, queue them, decode.

The model work goes to a queue per model (service/models.py): in this process (`single` layout) or in the model
process that every API worker feeds (`split`). Tokenising and decoding stay here. A large request is tokenised in
chunks on this worker's CPU thread, each chunk's units queued as soon as it is ready, so the model starts early
and other requests' chunks and units interleave. The request's admission ticket (service/admission.py) is given
back as soon as its first units queue: from then on they count instead.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from senpos.pos import Tagged, stitch
from senpos.sentiment import sentiment_label
from service.admission import Ticket
from service.memory import trim_memory
from service.models import Models
from service.units import cut

INLINE_CHARS = 2_000  # smaller requests are tokenised on the event loop: a thread hop costs more than the work
CHUNK_CHARS = 20_000  # larger ones in chunks of about this size, on the CPU thread
TRIM_CHARS = 10_000  # after a request this large, give freed memory back to the system (glibc keeps it)


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


class Pipeline:
    def __init__(self, models: Models):
        self.models = models
        self.cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise")
        self._requests = itertools.count()

    async def _on_cpu(self, size: int, fn: Callable, *args):
        if size <= INLINE_CHARS:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def _model(self, model: str, items: Sequence, lengths: Sequence[float], request: int,
                     ticket: Ticket) -> list:
        price = self.models.pricing(model)
        units = cut(items, lengths, price.cost, price.width)
        ticket.release()  # its units queue in this step (`run` does not yield before it submits them)
        results = await self.models.queues[model].run(units, request)
        return [r for unit in results for r in unit]

    async def _chunked(self, items: Sequence, encode: Callable, model: str, ticket: Ticket,
                       rows: Callable[[Any], tuple[Sequence, Sequence[float]]]) -> tuple[list, list]:
        """Encode chunk by chunk, queueing each chunk's model rows at once: (encoded items, model results),
        both in item order. `rows(encoded chunk) -> (model rows, their lengths)`."""
        request, tasks, encoded = next(self._requests), [], []
        sizes = [_size(x) for x in items]
        try:
            for a, b in _chunks(items, sizes, CHUNK_CHARS):
                chunk = await self._on_cpu(sum(sizes[a:b]), encode, items[a:b])
                encoded += chunk
                tasks.append(asyncio.ensure_future(self._model(model, *rows(chunk), request, ticket)))
            return encoded, [r for part in await asyncio.gather(*tasks) for r in part]
        finally:
            for t in tasks:
                t.cancel()
            if sum(sizes) > TRIM_CHARS:
                trim_memory()

    async def sentiment(self, texts: Sequence[str], ticket: Ticket) -> list[dict]:
        _, scores = await self._chunked(texts, self.models.sentiment.encode_many, "sentiment", ticket,
                                        lambda seqs: (seqs, [len(s) for s in seqs]))
        return [{"label": sentiment_label(p), "score": float(p)} for p in scores]

    async def pos_tag(self, items: Sequence[str | list[str]], ticket: Ticket) -> list[dict]:
        tagger = self.models.pos

        def encode(chunk: Sequence) -> list[tuple[list[str], list, list]]:
            return [(words, offsets, tagger.pieces(tagger.encode(words)))
                    for words, offsets in tagger.segment_many(chunk)]

        def rows(chunk: list) -> tuple[list, list[float]]:
            pieces = [p for _, _, cut_ in chunk for p, _, _ in cut_]
            return pieces, [tagger.steps(p) for p in pieces]

        encoded, scores = await self._chunked(items, encode, "pos", ticket, rows)
        return await self._on_cpu(sum(map(_size, items)), self._decode, encoded, scores)

    def _decode(self, encoded: list, scores: list[np.ndarray]) -> list[dict]:
        tagger = self.models.pos
        stitched = stitch([c for _, _, c in encoded], scores, len(tagger.tags))
        return [Tagged(words, tagger.decode(s), offsets).as_json()
                for (words, offsets, _), s in zip(encoded, stitched, strict=True)]
