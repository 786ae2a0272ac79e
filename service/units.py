"""Requests cut into units of model work, priced by the model's cost model, and packed into arrays for the wire.

A unit is at most `MAX_UNIT_ROWS` model rows (reviews, or windows of a sentence) and about `MAX_UNIT_S` of model
time, so a large request's units interleave with other requests' in the batcher. Its price is the model seconds
its rows cost inside a batch `width` rows wide: a long queue is served in full batches, so that is what queued
work costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from senpos.pos import Piece
from senpos.runtime import BatchCost
from service.batching import Unit

MAX_UNIT_ROWS = 16
MAX_UNIT_S = 0.05
# Request body bytes per model step, for the door's estimate: an English token is ~5 bytes of JSON; a Chinese
# word ~1.6 characters, 3 bytes each in UTF-8 and 6 as \uXXXX escapes.
BYTES_PER_STEP = {"sentiment": 5.0, "pos": 8.0}


def row_price(cost: BatchCost, length: float, width: int) -> float:
    """Model seconds one row of `length` steps costs in a batch of `width` rows: its own step cost plus its
    share of the batch's fixed per-step and per-call costs."""
    return length * (cost.row_step + cost.step / width) + cost.call / width


@dataclass(frozen=True)
class Pricing:
    """A model's cost model, and the batch width its queue forms under load."""

    cost: BatchCost
    width: int
    bytes_per_step: float = 5.0

    def body(self, content_length: int) -> float:
        """Model seconds a request body of this many bytes is likely to need (the door's reservation)."""
        steps = content_length / self.bytes_per_step
        return steps * (self.cost.row_step + self.cost.step / self.width)


def cut(items: Sequence, lengths: Sequence[float], cost: BatchCost, width: int) -> list[Unit]:
    """Consecutive units of at most MAX_UNIT_ROWS items and about MAX_UNIT_S model seconds, each priced."""
    units, start, price = [], 0, 0.0
    for i, n in enumerate(lengths):
        row = row_price(cost, max(n, 1), width)
        if i > start and (i - start == MAX_UNIT_ROWS or price + row > MAX_UNIT_S):
            units.append(Unit(items[start:i], price))
            start, price = i, 0.0
        price += row
    if len(items) > start:
        units.append(Unit(items[start:], price))
    return units


class Codec(Protocol):
    """How one model's unit items and their results travel as arrays (service/wire.py frames)."""

    @staticmethod
    def pack_items(items: Sequence[Any], /) -> list[np.ndarray]: ...

    @staticmethod
    def unpack_items(arrays: Sequence[np.ndarray], /) -> list[Any]: ...

    @staticmethod
    def pack_results(results: Sequence[Any], /) -> list[np.ndarray]: ...

    @staticmethod
    def unpack_results(arrays: Sequence[np.ndarray], /) -> list[Any]: ...


class SentimentCodec:
    """Token-id arrays (one per review) in, P(positive) out."""

    @staticmethod
    def pack_items(seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
        lengths = np.array([len(s) for s in seqs], dtype=np.int32)
        return [np.concatenate(seqs).astype(np.int32), lengths]

    @staticmethod
    def unpack_items(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        ids, lengths = arrays
        return np.split(ids.astype(np.int64), np.cumsum(lengths)[:-1])

    @staticmethod
    def pack_results(scores: Sequence[float]) -> list[np.ndarray]:
        return [np.asarray(scores, dtype=np.float32)]

    @staticmethod
    def unpack_results(arrays: Sequence[np.ndarray]) -> list[float]:
        return list(arrays[0])


class PosCodec:
    """Pieces (word ids, char ids, lexicon ids of up to max_words words) in, tag scores (words x tags) out."""

    @staticmethod
    def pack_items(pieces: Sequence[Piece]) -> list[np.ndarray]:
        lengths = np.array([len(w) for w, _, _ in pieces], dtype=np.int32)
        width = max(c.shape[1] for _, c, _ in pieces)
        chars = np.zeros((int(lengths.sum()), width), dtype=np.int32)
        row = 0
        for w, c, _ in pieces:
            chars[row : row + len(w), : c.shape[1]] = c
            row += len(w)
        return [np.concatenate([w for w, _, _ in pieces]).astype(np.int32),
                np.concatenate([x for _, _, x in pieces]).astype(np.int32), chars, lengths]

    @staticmethod
    def unpack_items(arrays: Sequence[np.ndarray]) -> list[Piece]:
        words, lex, chars, lengths = arrays
        cuts = np.cumsum(lengths)[:-1]
        return list(zip(np.split(words.astype(np.int64), cuts), np.split(chars.astype(np.int64), cuts),
                        np.split(lex.astype(np.int64), cuts), strict=True))

    @staticmethod
    def pack_results(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.concatenate(scores).astype(np.float32), np.array([len(s) for s in scores], dtype=np.int32)]

    @staticmethod
    def unpack_results(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        scores, lengths = arrays
        return np.split(scores, np.cumsum(lengths)[:-1])


CODECS: dict[str, Codec] = {"sentiment": SentimentCodec, "pos": PosCodec}
