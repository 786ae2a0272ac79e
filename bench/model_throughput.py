"""Model-alone CPU throughput of one or more sentiment model directories, measured by the benchmark's own
`bench.measure.limit_sentiment` (the same 2,000 bench reviews, pre-tokenised, planned batches; the larger of one
process on all cores and one single-threaded process per core), with the models measured in turn, twice,
so that two models are compared under the same load.

    python -m bench.model_throughput OLD_DIR NEW_DIR --seconds 10
"""

from __future__ import annotations

import argparse
import json
import time


def interleaved(models: list[str], texts: list[str], seconds: float, slices: int = 10) -> dict:
    """One single-threaded process, the models taking turns in short slices: on a machine shared with other
    jobs, both see the same load, so their ratio is steadier than separate runs."""
    from senpos.sentiment import SentimentPredictor

    predictors = [SentimentPredictor(m, threads=1, provider="cpu", max_batch=64) for m in models]
    seqs = [p.encode_many(texts) for p in predictors]
    done, spent = [0] * len(models), [0.0] * len(models)
    for _ in range(slices):
        for i, p in enumerate(predictors):
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds / slices:
                start = done[i] % len(seqs[i])
                chunk = seqs[i][start : start + 200]  # rotates through all the reviews
                p.predict_ids(chunk)
                done[i] += len(chunk)
            spent[i] += time.perf_counter() - t0
    return {m: round(d / t, 1) for m, d, t in zip(models, done, spent, strict=True)}


def main() -> None:
    from bench.measure import limit_sentiment
    from bench.payloads import reviews

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interleaved", action="store_true", help="one thread, models in turn (shared machine)")
    args = parser.parse_args()
    texts = reviews(2000, seed=1)  # what `make bench` measures
    if args.interleaved:
        print(json.dumps(interleaved(args.models, texts, args.seconds), indent=2))
        return
    results: dict[str, list[dict]] = {m: [] for m in args.models}
    for _ in range(args.rounds):
        for m in args.models:
            results[m].append(limit_sentiment(texts, args.seconds, model_dir=m))
            print(m, results[m][-1], flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
