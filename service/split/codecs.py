"""How each model's units and their results travel between an API worker and the model process: as numpy arrays,
framed by service/split/wire.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from senpos.pos import Piece


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
