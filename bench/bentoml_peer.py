"""The stock BentoML peer, built the way its docs recommend: `@bentoml.api(batchable=True)` (BentoML's own
adaptive batching), one worker per core, the same ONNX model and text processing as the service.

    bentoml serve bench.bentoml_peer:StockSentiment --port 3300
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml

from senpos.sentiment import SentimentPredictor, sentiment_label

MODEL = Path(__file__).resolve().parents[1] / "models" / "sentiment"


@bentoml.service(workers=os.cpu_count() or 1)
class StockSentiment:
    def __init__(self) -> None:
        self.predictor = SentimentPredictor(MODEL, threads=1)

    @bentoml.api(route="/sentiment", batchable=True, max_batch_size=64, max_latency_ms=1000)
    def sentiment(self, texts: list[str]) -> list[dict]:
        return [{"label": sentiment_label(p), "score": float(p)} for p in self.predictor.predict(texts)]
