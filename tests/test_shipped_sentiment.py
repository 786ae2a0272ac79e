"""The shipped model in models/sentiment: loads, ranks clear reviews right, stays batch invariant."""

import json
from pathlib import Path

import numpy as np
import pytest

from senpos.sentiment import SentimentPredictor

MODEL = Path(__file__).resolve().parents[1] / "models" / "sentiment"

POSITIVE = [
    "This is one of the best films I have ever seen. The acting is superb and the story moved me to tears.",
    "A wonderful, funny and warm movie. I loved every minute and will watch it again.",
    "Brilliant direction, a great cast and a beautiful score. Highly recommended!",
]
NEGATIVE = [
    "This is one of the worst films I have ever seen. The acting is terrible and the story is boring.",
    "A dull, stupid and painful movie. I hated every minute and want my money back.",
    "Awful direction, a wooden cast and an annoying score. Avoid it.",
]


@pytest.fixture(scope="module")
def predictor():
    return SentimentPredictor(MODEL)


def test_shipped_model_ranks_clear_reviews(predictor):
    pos, neg = predictor.predict(POSITIVE), predictor.predict(NEGATIVE)
    assert pos.min() > 0.8 and neg.max() < 0.2, (pos, neg)


def test_shipped_model_is_batch_invariant(predictor):
    long_review = " ".join(POSITIVE + NEGATIVE) * 20
    alone = predictor.predict([NEGATIVE[0]])[0]
    together = predictor.predict([long_review, NEGATIVE[0], POSITIVE[1] * 5])[1]
    assert abs(alone - together) <= 1e-5


def test_shipped_artifacts_are_consistent():
    config = json.loads((MODEL / "config.json").read_text())
    metrics = json.loads((MODEL / "metrics.json").read_text())
    evaluation = json.loads((MODEL / "evaluation.json").read_text())
    assert metrics["config"] == config["train_config"]
    assert metrics["val_accuracy"] >= 0.90
    assert np.isclose(evaluation["validation"]["accuracy"], metrics["val_accuracy"], atol=1e-3)
    assert sum(f.stat().st_size for f in MODEL.iterdir()) < 30 * 2**20


def test_shipped_model_keeps_its_recorded_probe_accuracy():
    """The robustness probes (tests/fixtures/sentiment_probes.jsonl): a reshipped model may not score below
    the figure recorded for the shipped one."""
    from training.sentiment.evaluate import probe_accuracy

    recorded = json.loads((MODEL / "evaluation.json").read_text())["probes"]["accuracy"]
    assert probe_accuracy(MODEL)["accuracy"] >= recorded - 1e-9
