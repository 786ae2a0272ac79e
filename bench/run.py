"""Side-by-side benchmark on this machine, same payloads, one run (`make bench`; `--smoke` for CI):

1. the limit: the ONNX models alone through onnxruntime, ideal length-sorted batches (no HTTP);
2. the service in both layouts (SENPOS_LAYOUT single and split): one item per request (the server must batch)
   and client-batched (64 items per request), closed loop over a sweep of concurrency; for the default layout
   also an open loop over a sweep of arrival rates and /pos-tag;
3. the naive baseline: one request = one PyTorch forward pass behind a minimal HTTP server;
4. the peers, built as their docs recommend, same model and text processing: Ray Serve with @serve.batch (needs
   .venv-ray) and stock BentoML with `batchable=True`;
5. /pos-tag: characters/s of the service and of the pipeline in one process, next to jieba.posseg.

Results: bench/results/<name>.json, <name>.md and <name>.png (latency against throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.loadgen import LoadPool, batch_stats, closed_loop, open_loop, stats_delta
from bench.payloads import reviews, sentences
from bench.profile import profile
from bench.report import targets, write_report
from service.settings import SETTINGS
from tests.server import BENTOML, free_port, running_server

REPO = Path(__file__).resolve().parents[1]
RAY_PYTHON = REPO / ".venv-ray" / "bin" / "python"


def _model_alone(texts: list[str], seconds: float, threads: int, start=None, out=None, provider: str = "cpu",
                 max_batch: int = 64) -> tuple[float, float]:
    """(reviews/s of the ONNX model alone on pre-tokenised reviews in planned batches, reviews/s of the
    tokenisation before it, on one core)."""
    from senpos.sentiment import SentimentPredictor

    predictor = SentimentPredictor(REPO / "models" / "sentiment", threads=threads, provider=provider,
                                   max_batch=max_batch)
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


def limit_sentiment(texts: list[str], seconds: float) -> dict:
    """The best the model alone does on this machine: one process using every core, or one single-threaded
    process per core running side by side (how the service runs it); the larger is the limit."""
    import multiprocessing as mp

    one_process, tokenise = _model_alone(texts, seconds, threads=0)
    ctx, cpus = mp.get_context("spawn"), os.cpu_count() or 1
    start, out = ctx.Barrier(cpus), ctx.Queue()
    procs = [ctx.Process(target=_model_alone, args=(texts, seconds, 1, start, out)) for _ in range(cpus)]
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

    tagger = PosTagger(REPO / "models" / "pos", provider=provider, max_batch=max_batch)
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


def layout_sweeps(base: str, singles: list[dict], batches: list[dict], levels: list[int], seconds: float,
                  smoke: bool) -> dict:
    """One review per request at each level, and 64 per request, on one server."""
    return {"one_per_request": sweep(base, "/sentiment", singles, 1, levels, seconds, "sentiment"),
            "batched_64": sweep(base, "/sentiment", batches, 64, [1, 2] if smoke else [1, 2, 4], seconds, "sentiment")}


def open_sweep(
    base: str, payloads: list[dict], saturation: float, fractions: list[float], seconds: float
) -> list[dict]:
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


def peer(cmd: list[str], port: int, texts: list[str], levels: list[int], seconds: float, env=None) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[2:4]} exited with {proc.returncode}")
            try:
                if httpx.post(f"{base}/sentiment", json={"texts": ["warm up"]}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd} not ready")
            time.sleep(1)
        return sweep(base, "/sentiment", [{"texts": [t]} for t in texts], 1, levels, seconds, None)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run for CI (results not kept)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement point")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="cpu-" + time.strftime("%Y-%m-%d"))
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    texts, zh = reviews(2000, seed=1, smoke=args.smoke), sentences(2000, seed=1, smoke=args.smoke)
    started = time.time()
    result: dict = {
        "name": args.name,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "smoke": args.smoke,
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "payloads": {
            "reviews": len(texts),
            "review_chars_mean": round(sum(map(len, texts)) / len(texts)),
            "sentences": len(zh),
            "sentence_chars_mean": round(sum(map(len, zh)) / len(zh)),
        },
    }
    print("limit (model alone)", flush=True)
    result["limit"] = {"sentiment": limit_sentiment(texts[:500] if args.smoke else texts, seconds * 2)}
    result["pos_in_process"] = pos_in_process(zh[:300] if args.smoke else zh)
    print(" ", result["limit"], result["pos_in_process"], flush=True)

    levels = [8, 32] if args.smoke else [8, 32, 64, 128]
    singles = [{"texts": [t]} for t in texts]
    batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts), 64)]
    default = SETTINGS.resolved_layout()
    result["default_layout"], result["service_layouts"] = default, {}
    for layout in ("single", "split"):  # the default layout last, so the machine is warm for its longer run
        if layout == default:
            continue
        print(f"service, SENPOS_LAYOUT={layout}", flush=True)
        with running_server({"SENPOS_LAYOUT": layout}) as base:
            asyncio.run(closed_loop(base, "/sentiment", singles, 16, 2, 1))  # warm-up
            result["service_layouts"][layout] = layout_sweeps(base, singles, batches, levels, seconds, args.smoke)
    print(f"service, SENPOS_LAYOUT={default} (the default here)", flush=True)
    with running_server({"SENPOS_LAYOUT": default}) as base:
        asyncio.run(closed_loop(base, "/sentiment", singles, 16, 2, 1))  # warm-up
        service = layout_sweeps(base, singles, batches, [1, *levels] if not args.smoke else levels, seconds,
                                args.smoke)
        result["service_layouts"][default] = service
        saturation = max(r["items_per_s"] for r in service["one_per_request"])
        fractions = [0.5] if args.smoke else [0.25, 0.5, 0.75, 0.9, 1.1]
        service["open_loop"] = open_sweep(base, singles, saturation, fractions, seconds * 1.5)
        zh_singles = [{"texts": [t]} for t in zh]
        service["pos_one_per_request"] = sweep(base, "/pos-tag", zh_singles, 1, [32], seconds, "pos_tag")
        service["pos_batched_64"] = sweep(
            base, "/pos-tag", [{"texts": zh[i : i + 64]} for i in range(0, len(zh), 64)], 64, [2], seconds, "pos_tag"
        )
        for key in ("pos_one_per_request", "pos_batched_64"):
            for row in service[key]:
                row["chars_per_s"] = round(row["items_per_s"] * result["payloads"]["sentence_chars_mean"])
    result["service"] = service

    print("stock BentoML peer (@bentoml.api(batchable=True))", flush=True)
    port = free_port()
    result["stock_bentoml"] = peer([BENTOML, "serve", "bench.bentoml_peer:StockSentiment", "--port", str(port)],
                                   port, texts, levels, seconds,
                                   env={"BENTOML_HOME": str(REPO / ".pytest_cache" / f"bentoml-home-{port}")})
    print("naive baseline (PyTorch, one forward per request, no batching)", flush=True)
    port = free_port()
    result["naive"] = peer(
        [sys.executable, "-m", "bench.naive_server", "--port", str(port)],
        port,
        texts,
        [8] if args.smoke else [1, 8, 32],
        seconds,
    )
    if RAY_PYTHON.exists():
        print("Ray Serve peer", flush=True)
        port = free_port()
        result["ray_serve"] = peer(
            [str(RAY_PYTHON), "-m", "bench.ray_peer", "--port", str(port)],
            port,
            texts,
            levels,
            seconds,
        )
    else:
        result["ray_serve"] = None
        print("Ray Serve peer skipped: no .venv-ray (make bench creates it)", flush=True)
    if any(ok is False for _, _, ok in targets(result)):
        print("profile: a target was missed, so the report says where the time goes", flush=True)
        result["profile"] = {}
        for path, items in (("/sentiment", texts), ("/pos-tag", zh)):
            counts = profile(path, [{"texts": [t]} for t in items], 2.0 if args.smoke else 10.0)
            result["profile"][path] = {"items_per_s": counts.pop("_throughput"), "samples": dict(counts)}
    result["elapsed_s"] = round(time.time() - started)
    out = args.out / ("smoke" if args.smoke else "")
    write_report(result, out, args.name)


if __name__ == "__main__":
    main()
