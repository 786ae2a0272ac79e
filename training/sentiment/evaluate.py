"""Score a labelled file with an exported model directory (onnxruntime, the serving code path)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from senpos.sentiment import SentimentPredictor
from training.sentiment.data import load_reviews


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width bins of the predicted label's confidence."""
    pred = (probs >= 0.5).astype(int)
    conf = np.where(pred == 1, probs, 1 - probs)
    edges = np.linspace(0.5, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi) if lo > 0.5 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs((pred[in_bin] == labels[in_bin]).mean() - conf[in_bin].mean())
    return float(ece)


def ece_of_a_calibrated_model(probs: np.ndarray, draws: int = 500, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these scores would show on this many texts (labels drawn from
    its own probabilities), on average: the floor that sampling noise alone puts under a measured ECE."""
    rng = np.random.default_rng(seed)
    return float(np.mean([expected_calibration_error(probs, (rng.random(len(probs)) < probs).astype(int))
                          for _ in range(draws)]))


def score(probs: np.ndarray, labels: np.ndarray) -> dict:
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return {
        "n": len(labels),
        "accuracy": float(np.mean((probs >= 0.5) == labels)),
        "log_loss": float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))),
        "ece": expected_calibration_error(probs, labels),
    }


def evaluate_file(data: str | Path, model_dir: str | Path, split: str = "test") -> dict:
    reviews = load_reviews(data, split=split)
    predictor = SentimentPredictor(model_dir)
    probs = predictor.predict([r.text for r in reviews])
    return {"data": str(data), "model": str(model_dir), **score(probs, np.array([r.label for r in reviews]))}


PROBES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sentiment_probes.jsonl"


def probe_accuracy(model_dir: str | Path, probes: str | Path = PROBES) -> dict:
    """Accuracy on the short robustness probes the tests own (negation, contrast, very short texts, other
    domains than film), overall and per category."""
    import json

    rows = [json.loads(line) for line in Path(probes).read_text(encoding="utf-8").splitlines() if line.strip()]
    probs = SentimentPredictor(model_dir).predict([r["text"] for r in rows])
    right = [(p >= 0.5) == bool(r["label"]) for p, r in zip(probs, rows, strict=True)]
    cats = sorted({r["category"] for r in rows})
    return {"n": len(rows), "accuracy": float(np.mean(right)),
            "by_category": {c: float(np.mean([ok for ok, r in zip(right, rows, strict=True) if r["category"] == c]))
                            for c in cats},
            "wrong": [r["text"] for ok, r in zip(right, rows, strict=True) if not ok]}
