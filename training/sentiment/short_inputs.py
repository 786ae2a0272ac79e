"""Short inputs for training and evaluation: sentence crops of reviews, and the hand-written short-text set.

A crop of one to three consecutive sentences keeps its review's label. Most crops of a review are neutral
(plot, cast), and those appear in positive and negative reviews alike, so a model fitted to them learns
P(the review is positive | this crop): near 0.5 for a neutral sentence, confident only for a verdict. That
is the score we want for a short input, with no teacher and no extra labels.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np

from senpos.text.english import tokenize_many
from senpos.text.vocab import Vocab

SHORT_TEXTS = Path(__file__).resolve().parent / "short_texts"
SHORT_EVAL = SHORT_TEXTS / "eval.jsonl"  # select and report parts ("part"); never trained on
SENTENCE_ENDS = (".", "!", "?", "...", "..", "!!", "!!!", "?!", "??")


def sentence_end_ids(vocab: Vocab) -> np.ndarray:
    return np.array([vocab.stoi[t] for t in SENTENCE_ENDS if t in vocab.stoi], dtype=np.int64)


def sentences(ids: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each sentence of a review's token ids (a sentence ends after an end token)."""
    cut = np.flatnonzero(np.isin(ids, ends)) + 1
    bounds = [0, *cut.tolist()]
    if bounds[-1] != len(ids):
        bounds.append(len(ids))
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def random_crop(ids: np.ndarray, ends: np.ndarray, rng: random.Random, max_sentences: int = 3,
                max_tokens: int = 64) -> np.ndarray:
    """One to `max_sentences` consecutive sentences of a review, at most `max_tokens` tokens."""
    spans = sentences(ids, ends) or [(0, len(ids))]
    k = min(rng.randint(1, max_sentences), len(spans))
    first = rng.randrange(len(spans) - k + 1)
    start, end = spans[first][0], spans[first + k - 1][1]
    return ids[start : min(end, start + max_tokens)]


def load_short_texts(name: str) -> list[dict]:
    """Rows of `short_texts/<name>.jsonl` ({"text", "label", "domain", "phenomenon"[, "part"]})."""
    path = SHORT_TEXTS / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def encode_short_texts(rows: list[dict], vocab: Vocab) -> tuple[list[np.ndarray], np.ndarray]:
    seqs = [np.asarray(vocab.encode(t) or [1], dtype=np.int64) for t in tokenize_many(r["text"] for r in rows)]
    return seqs, np.array([int(r["label"]) for r in rows], dtype=np.int64)


def assign_parts(rows: list[dict], seed: int = 13) -> list[dict]:
    """Half of each (domain, label) cell to "select", the rest to "report" (seeded; run once, stored in the file)."""
    rng = random.Random(seed)
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["domain"], r["label"]), []).append(r)
    for key in sorted(cells):
        cell = cells[key]
        rng.shuffle(cell)
        for i, r in enumerate(cell):
            r["part"] = "select" if i < len(cell) // 2 + (len(cell) % 2) * rng.randint(0, 1) else "report"
    return rows
