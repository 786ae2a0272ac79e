"""Sentiment predictor: a model directory in, P(positive) out; onnxruntime only (no torch)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from senpos.runtime import ModelLoadError, load_vocabs, measure_cost, open_model, plan_batches, require_files
from senpos.text.english import tokenize, tokenize_many, truncate
from senpos.text.vocab import Vocab

FILES = ("model.onnx", "vocab.json", "config.json")


def sentiment_label(p_positive: float) -> str:
    """The label users see for a score: the one rule, shared by the service and every benchmark peer."""
    return "positive" if p_positive >= 0.5 else "negative"


def vocab_digest(vocab: Vocab) -> str:
    """Stored in the ONNX metadata at export, so a mismatched vocabulary is caught at load."""
    return hashlib.sha256("\n".join(vocab.itos).encode("utf-8")).hexdigest()


class SentimentPredictor:
    """Load `model_dir` (model.onnx, vocab.json, config.json) and score English texts."""

    def __init__(self, model_dir: str | Path, threads: int = 0, provider: str | None = None, max_batch: int = 64):
        self.model_dir = Path(model_dir)
        require_files(self.model_dir, FILES)
        try:
            self.config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
            self.max_tokens = int(self.config["preprocessing"]["max_tokens"])
            self.head_tokens = int(self.config["preprocessing"]["head_tokens"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{self.model_dir / 'config.json'}: invalid config ({e})") from e
        (self.vocab,) = load_vocabs(self.model_dir / "vocab.json")
        self.session = open_model(self.model_dir / "model.onnx", vocab_digest(self.vocab), "vocab.json", threads,
                                  provider)
        self.max_batch = max_batch
        self.provider = self.session.get_providers()[0]
        self.cost = measure_cost(lambda n, length: self._run(np.ones((n, length), dtype=np.int64)), max_batch)

    def encode(self, text: str) -> np.ndarray:
        """Text -> truncated token ids: the CPU-side preprocessing, shared with training."""
        return self._ids(tokenize(text))

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self._ids(t) for t in tokenize_many(texts)]

    def _ids(self, tokens: list[str]) -> np.ndarray:
        ids = truncate(self.vocab.encode(tokens), self.max_tokens, self.head_tokens) or [1]  # empty -> <unk>
        return np.asarray(ids, dtype=np.int64)

    def _run(self, ids: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        if lengths is None:
            lengths = np.full(len(ids), ids.shape[1], dtype=np.int64)
        return self.session.run(None, {"ids": ids, "lengths": lengths})[0]

    def predict_ids(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Score encoded reviews in batches of similar length (planned with the measured cost of padding
        against the cost of another call); results in input order."""
        return self.predict_ids_costed(seqs)[0]

    def predict_ids_costed(self, seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        """`predict_ids`, and the seconds the cost model predicted for the calls it made."""
        out, predicted = np.empty(len(seqs), dtype=np.float32), 0.0
        for batch in plan_batches([len(s) for s in seqs], self.max_batch, self.cost):
            lengths = np.array([len(seqs[i]) for i in batch], dtype=np.int64)
            ids = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, : lengths[row]] = seqs[i]
            out[batch] = self._run(ids, lengths)
            predicted += self.cost(len(batch), int(lengths.max()))
        return out, predicted

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) for each text, in order."""
        return self.predict_ids(self.encode_many(texts))
