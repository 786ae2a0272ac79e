"""Requests cut into units of model work, priced by the model's cost model, and packed into arrays for the wire.

A unit is at most `MAX_UNIT_ROWS` model rows (reviews, or windows of a sentence), so a large request's units
interleave with other requests' in the batcher. Its price is the model seconds its rows cost inside a batch
`width` rows wide: a long queue is served in full batches, so that is what queued work costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from senpos.pos import Piece
from senpos.runtime import BatchCost
from service.batching import Unit

MAX_UNIT_ROWS = 16
_BYTES_PER_STEP = 5  # request body bytes per model step (an English token, a Chinese word), for the door


def row_price(cost: BatchCost, length: float, width: int) -> float:
    """Model seconds one row of `length` steps costs in a batch of `width` rows: its own step cost plus its
    share of the batch's fixed per-step and per-call costs."""
    return length * (cost.row_step + cost.step / width) + cost.call / width


@dataclass(frozen=True)
class Pricing:
    """A model's cost model, and the batch width its queue forms under load."""

    cost: BatchCost
    width: int

    def body(self, content_length: int) -> float:
        """Model seconds a request body of this many bytes is likely to need (the door's reservation)."""
        steps = content_length / _BYTES_PER_STEP
        return steps * (self.cost.row_step + self.cost.step / self.width)


def cut(items: Sequence, lengths: Sequence[float], cost: BatchCost, width: int) -> list[Unit]:
    """Consecutive units of at most MAX_UNIT_ROWS items, each priced."""
    units = []
    for a in range(0, len(items), MAX_UNIT_ROWS):
        b = min(a + MAX_UNIT_ROWS, len(items))
        units.append(Unit(items[a:b], sum(row_price(cost, max(n, 1), width) for n in lengths[a:b])))
    return units


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


CODECS = {"sentiment": SentimentCodec, "pos": PosCodec}
