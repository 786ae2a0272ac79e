"""Throughput measurements the benchmarks share: the models alone in process (the limit), and sweeps of HTTP load
over a running server with its batch sizes from /metrics."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from pathlib import Path

import httpx

from bench.harness import REPO
from bench.loadgen import LoadPool, batch_stats, closed_loop, open_loop, stats_delta

SENTIMENT, POS = REPO / "models" / "sentiment", REPO / "models" / "pos"


def model_alone(texts: list[str], seconds: float, threads: int, start=None, out=None, provider: str = "cpu",
                max_batch: int = 64, model_dir: Path | str = SENTIMENT) -> tuple[float, float]:
    """(reviews/s of the ONNX model alone on pre-tokenised reviews in planned batches, reviews/s of the
    tokenisation before it, on one core). `start` (a barrier) and `out` (a queue) are for running side by side
    in processes."""
    from senpos.sentiment import SentimentPredictor

    predictor = SentimentPredictor(model_dir, threads=threads, provider=provider, max_batch=max_batch)
    predictor.encode_many(texts[:8])  # spaCy builds its tokenizer on first use: not part of the rate
    t0 = time.perf_counter()
    seqs = predictor.encode_many(texts)
    tokenise = len(texts) / (time.perf_counter() - t0)
    predictor.predict_ids(seqs[:64])
    if start is not None:
        start.wait()  # every process measures over the same seconds
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        predictor.predict_ids(seqs)
        done += len(seqs)
    rate = done / (time.perf_counter() - t0)
    if out is not None:
        out.put(rate)
    return rate, tokenise


def limit_sentiment(texts: list[str], seconds: float, model_dir: Path | str = SENTIMENT) -> dict:
    """The best the model alone does on this machine: one process using every core, or one single-threaded
    process per core running side by side (how the service runs it); the larger is the limit."""
    one_process, tokenise = model_alone(texts, seconds, threads=0, model_dir=model_dir)
    ctx, cpus = mp.get_context("spawn"), os.cpu_count() or 1
    start, out = ctx.Barrier(cpus), ctx.Queue()
    procs = [ctx.Process(target=model_alone, args=(texts, seconds, 1, start, out), kwargs={"model_dir": model_dir})
             for _ in range(cpus)]
    for p in procs:
        p.start()
    per_core = sum(out.get(timeout=seconds + 300) for _ in procs)
    for p in procs:
        p.join()
    return {"reviews_per_s": round(max(one_process, per_core), 1), "one_process_all_cores": round(one_process, 1),
            "one_process_per_core": round(per_core, 1), "tokenise_reviews_per_s_one_core": round(tokenise, 1)}


def pos_in_process(texts: list[str], provider: str = "cpu", max_batch: int = 64) -> dict:
    """The whole pipeline (segmentation + ONNX tagging, batched) and the ONNX model alone, next to
    jieba.posseg (default dictionary), on the same sentences in one process."""
    from senpos.pos import PosTagger
    from training.pos.evaluate import jieba_posseg

    tagger = PosTagger(POS, provider=provider, max_batch=max_batch)
    chars = sum(map(len, texts))
    t0 = time.perf_counter()
    tagger.tag(texts)
    pipeline = time.perf_counter() - t0
    encoded = [tagger.encode(tagger.segment(t)[0]) for t in texts]
    t0 = time.perf_counter()
    tagger.tag_encoded(encoded)
    model = time.perf_counter() - t0
    _, jieba_seconds = jieba_posseg(texts)
    return {
        "chars": chars,
        "pipeline_chars_per_s": round(chars / pipeline),
        "model_chars_per_s": round(chars / model),
        "jieba_posseg_chars_per_s": round(chars / jieba_seconds),
        "pipeline_vs_jieba": round(jieba_seconds / pipeline, 2),
    }


def sweep(
    base: str, path: str, payloads: list[dict], items: int, levels: list[int], seconds: float, method: str | None,
    pool: LoadPool | None = None,
) -> list[dict]:
    """A closed loop at each level of concurrency; with `method`, the server's batches for it during each."""
    rows = []
    for level in levels:
        before = batch_stats(httpx.get(f"{base}/metrics").text, method) if method else None
        if pool:
            row = pool.closed_loop(base, path, payloads, level, seconds, items).summary()
        else:
            row = asyncio.run(closed_loop(base, path, payloads, level, seconds, items)).summary()
        if method:
            row["server_batches"] = stats_delta(before, batch_stats(httpx.get(f"{base}/metrics").text, method))
        rows.append(row)
        print(
            f"  {path} closed c={level:3d} x{items}: {row['items_per_s']:8.1f} items/s  p50 {row['p50_ms']:7.1f}  "
            f"p99 {row['p99_ms']:7.1f} ms  {row['statuses']}",
            flush=True,
        )
    return rows


def open_sweep(
    base: str, payloads: list[dict], saturation: float, fractions: list[float], seconds: float
) -> list[dict]:
    """An open loop of one review per request at each fraction of `saturation` (requests/s)."""
    rows = []
    for fraction in fractions:
        rate = max(1.0, saturation * fraction)
        row = asyncio.run(open_loop(base, "/sentiment", payloads, rate, seconds, 1)).summary()
        row["fraction_of_saturation"] = fraction
        rows.append(row)
        print(
            f"  open {rate:7.1f} req/s ({fraction:.2f} sat): {row['items_per_s']:8.1f} items/s  "
            f"p50 {row['p50_ms']:7.1f}  p99 {row['p99_ms']:7.1f} ms  {row['statuses']}",
            flush=True,
        )
    return rows
