"""Constrained decoding for the tagger: the BiLSTM's per-word tag log-probabilities plus a weighted tag-bigram
model (log P(tag | previous tag), counted on the training corpus), decoded exactly with Viterbi in numpy.

With weight 0 it is the plain argmax; the weight is chosen on dev (training/pos/decoding.py).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np


def log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class TagBigrams:
    def __init__(self, start: np.ndarray, transitions: np.ndarray, weight: float):
        self.start, self.transitions, self.weight = start, transitions, weight

    @classmethod
    def count(cls, tag_sequences: list[list[int]], n_tags: int, weight: float = 0.0) -> TagBigrams:
        start = np.ones(n_tags)
        trans = np.ones((n_tags, n_tags))  # add-one smoothing: no transition is impossible
        for tags in tag_sequences:
            if len(tags):
                start[tags[0]] += 1
            for a, b in itertools.pairwise(tags):
                trans[a, b] += 1
        return cls(np.log(start / start.sum()), np.log(trans / trans.sum(axis=1, keepdims=True)), weight)

    @classmethod
    def load(cls, path: Path) -> TagBigrams:
        data = json.loads(path.read_text())
        return cls(np.asarray(data["start"]), np.asarray(data["transitions"]), float(data["weight"]))

    def save(self, path: Path, tags: list[str]) -> None:
        path.write_text(json.dumps({"tags": tags, "weight": self.weight, "start": self.start.round(6).tolist(),
                                    "transitions": self.transitions.round(6).tolist()}))

    def decode(self, scores: np.ndarray, weight: float | None = None) -> np.ndarray:
        """Best tag sequence for one sentence's (words, tags) scores."""
        w = self.weight if weight is None else weight
        emissions = log_softmax(scores)
        if w == 0.0 or len(emissions) == 0:
            return emissions.argmax(-1)
        trans = w * self.transitions
        best = emissions[0] + w * self.start
        back = np.zeros(emissions.shape, dtype=np.int64)
        for i in range(1, len(emissions)):
            candidates = best[:, None] + trans  # previous tag x next tag
            back[i] = candidates.argmax(0)
            best = candidates.max(0) + emissions[i]
        path = [int(best.argmax())]
        for i in range(len(emissions) - 1, 0, -1):
            path.append(int(back[i, path[-1]]))
        return np.asarray(path[::-1])
