"""Measure the exported model (validation accuracy and ECE through onnxruntime, CPU throughput) and
write evaluation.json and MODEL_CARD.md into the model directory.

    python -m training.sentiment.report --model models/sentiment
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from senpos.sentiment import SentimentPredictor
from training.sentiment.data import load_reviews, stratified_split
from training.sentiment.evaluate import score


def throughput(predictor: SentimentPredictor, seqs: list[np.ndarray], batch: int, seconds: float = 10.0) -> float:
    """Reviews/s of the ONNX model alone on already-encoded reviews, length-sorted batches of `batch`."""
    predictor.max_batch = batch
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = seqs[done % len(seqs) : done % len(seqs) + max(batch, 64)]
        predictor.predict_ids(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/sentiment"))
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput measurement")
    args = parser.parse_args()

    prep = json.loads((args.model / "prepare.json").read_text())
    _, val = stratified_split(load_reviews(prep["train"]), prep["val_fraction"], prep["seed"])
    predictor = SentimentPredictor(args.model)
    seqs = predictor.encode_many([r.text for r in val])
    probs = predictor.predict_ids(seqs)
    result = {"validation": score(probs, np.array([r.label for r in val]))}
    rng = np.random.default_rng(0)
    sample = [seqs[i] for i in rng.permutation(len(seqs))]
    result["cpu_throughput_reviews_per_s"] = {
        f"batch_{b}": round(throughput(predictor, sample, b, args.seconds), 1) for b in (1, 64)}
    result["machine"] = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version(), "provider": predictor.provider}
    result["command"] = f"python -m training.sentiment.report --model {args.model}"
    (args.model / "evaluation.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
