"""Measure the exported model (select, report and short-text accuracy and ECE through onnxruntime, CPU
throughput) and write evaluation.json into the model directory.

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
from training.sentiment.data import Review, load_reviews, stratified_split
from training.sentiment.evaluate import ece_of_a_calibrated_model, probe_accuracy, score
from training.sentiment.short_inputs import load_short_texts
from training.sentiment.split import group_reviews, grouped_split


def throughput(predictor: SentimentPredictor, seqs: list[np.ndarray], batch: int, seconds: float = 10.0) -> float:
    """Reviews/s of the ONNX model alone on already-encoded reviews, length-sorted batches of `batch`."""
    predictor.max_batch = batch
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = seqs[done % len(seqs) : done % len(seqs) + max(batch, 64)]
        predictor.predict_ids(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - start)


def held_out_parts(model_dir: Path) -> dict[str, list[Review]]:
    """The parts of train the model never trained on: "validation" (select) and "report" from the split.json
    that prepare.py wrote (or the grouped split rebuilt from prepare.json), "validation" alone for the
    older random split."""
    prep = json.loads((model_dir / "prepare.json").read_text())
    reviews = load_reviews(prep["train"])
    if "report_fraction" not in prep:
        return {"validation": stratified_split(reviews, prep["val_fraction"], prep["seed"])[1]}
    if (model_dir / "split.json").exists():
        split = json.loads((model_dir / "split.json").read_text())
        select, report = split["select"], split["report"]
    else:
        groups = group_reviews([r.text for r in reviews])
        _, select, report = grouped_split([r.label for r in reviews], groups,
                                          (prep["val_fraction"], prep["report_fraction"]), prep["seed"])
    return {"validation": [reviews[i] for i in select], "report": [reviews[i] for i in report]}


def short_text_scores(predictor: SentimentPredictor) -> dict:
    """Per part of the short-text set: the usual scores, accuracy per phenomenon and per domain, and the wrong
    answers given with confidence above 0.95."""
    out = {}
    rows = load_short_texts("eval")
    for part in ("select", "report"):
        sub = [r for r in rows if r["part"] == part]
        probs = predictor.predict([r["text"] for r in sub])
        y = np.array([r["label"] for r in sub])
        right = (probs >= 0.5) == y
        conf = np.maximum(probs, 1 - probs)
        out[part] = {**score(probs, y), "ece_of_a_calibrated_model": ece_of_a_calibrated_model(probs),
                     "wrong_above_0.95": [r["text"] for r, ok, c in zip(sub, right, conf, strict=True)
                                          if not ok and c > 0.95]}
        for key in ("phenomenon", "domain"):
            out[part][f"by_{key}"] = {v: round(float(np.mean([ok for ok, r in zip(right, sub, strict=True)
                                                               if r[key] == v])), 4)
                                      for v in sorted({r[key] for r in sub})}
    return out


def report(model_dir: Path, seconds: float = 10.0) -> dict:
    """Score the held-out parts through onnxruntime, measure throughput; write evaluation.json."""
    predictor = SentimentPredictor(model_dir)
    result = {}
    for name, part in held_out_parts(model_dir).items():
        seqs = predictor.encode_many([r.text for r in part])
        probs = predictor.predict_ids(seqs)
        result[name] = {**score(probs, np.array([r.label for r in part])),
                        "ece_of_a_calibrated_model": ece_of_a_calibrated_model(probs)}
    result["short_texts"] = short_text_scores(predictor)
    result["probes"] = probe_accuracy(model_dir)
    rng = np.random.default_rng(0)
    sample = [seqs[i] for i in rng.permutation(len(seqs))]
    result["cpu_throughput_reviews_per_s"] = {
        f"batch_{b}": round(throughput(predictor, sample, b, seconds), 1) for b in (1, 64)}
    result["machine"] = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version(), "provider": predictor.provider}
    result["command"] = f"python -m training.sentiment.report --model {model_dir}"
    (model_dir / "evaluation.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/sentiment"))
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput measurement")
    args = parser.parse_args()
    print(json.dumps(report(args.model, args.seconds), indent=2))


if __name__ == "__main__":
    main()
