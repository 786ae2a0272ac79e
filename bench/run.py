"""Side-by-side benchmark on this machine, same payloads, one run (`make bench`; `--smoke` for CI):

1. the limit: the ONNX models alone through onnxruntime, ideal length-sorted batches (no HTTP);
2. the service in both layouts (SENPOS_LAYOUT single and split): one item per request (the server must batch)
   and client-batched (64 items per request), closed loop over a sweep of concurrency; for the default layout
   also an open loop over a sweep of arrival rates and /pos-tag;
3. the naive baseline: one request = one PyTorch forward pass behind a minimal HTTP server;
4. the peers, built as their docs recommend, same model and text processing: Ray Serve with @serve.batch (needs
   .venv-ray) and stock BentoML with `batchable=True`;
5. /pos-tag: characters/s of the service (bench/pos.py) and of the pipeline in one process, next to jieba.posseg.

Results: bench/results/<name>.json, <name>.md and <name>.png (latency against throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import report
from bench.harness import LOGS, REPO, answers_sentiment, free_port, running_server, serve_command, started
from bench.loadgen import closed_loop
from bench.measure import limit_sentiment, open_sweep, pos_in_process, sweep
from bench.payloads import reviews, sentences
from bench.pos import service_rows as pos_service_rows
from bench.usage import profile_server
from service.settings import SETTINGS

RAY_PYTHON = REPO / ".venv-ray" / "bin" / "python"


def peer(command: Callable[[int], list[str]], texts: list[str], levels: list[int], seconds: float) -> list[dict]:
    """One review per request at each level against a peer, `command(port)` on a free port (with a BENTOML_HOME
    of its own, like the service's)."""
    port = free_port()
    env = {"BENTOML_HOME": str(LOGS / f"bentoml-home-{port}")}
    with started(command(port), port, answers_sentiment, env, ready_timeout=180, poll_s=1) as (base, _):
        return sweep(base, "/sentiment", [{"texts": [t]} for t in texts], 1, levels, seconds, None)


def layout_sweeps(base: str, singles: list[dict], batches: list[dict], levels: list[int], seconds: float,
                  smoke: bool) -> dict:
    """One review per request at each level, and 64 per request, on one server."""
    return {"one_per_request": sweep(base, "/sentiment", singles, 1, levels, seconds, "sentiment"),
            "batched_64": sweep(base, "/sentiment", batches, 64, [1, 2] if smoke else [1, 2, 4], seconds, "sentiment")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run for CI (results not kept)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement point")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="cpu-" + time.strftime("%Y-%m-%d"))
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    texts, zh = reviews(2000, seed=1, smoke=args.smoke), sentences(2000, seed=1, smoke=args.smoke)
    began = time.time()
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
        service["pos_tag"] = pos_service_rows(base, zh, seconds)
    result["service"] = service

    print("stock BentoML peer (@bentoml.api(batchable=True))", flush=True)
    result["stock_bentoml"] = peer(lambda port: serve_command(port, "bench.bentoml_peer:StockSentiment"), texts,
                                   levels, seconds)
    print("naive baseline (PyTorch, one forward per request, no batching)", flush=True)
    result["naive"] = peer(lambda port: [sys.executable, "-m", "bench.naive_server", "--port", str(port)], texts,
                           [8] if args.smoke else [1, 8, 32], seconds)
    if RAY_PYTHON.exists():
        print("Ray Serve peer", flush=True)
        result["ray_serve"] = peer(lambda port: [str(RAY_PYTHON), "-m", "bench.ray_peer", "--port", str(port)], texts,
                                   levels, seconds)
    else:
        result["ray_serve"] = None
        print("Ray Serve peer skipped: no .venv-ray (make bench creates it)", flush=True)
    if any(ok is False for _, _, ok in report.targets(result)):
        print("profile: a target was missed, so the report says where the time goes", flush=True)
        result["profile"] = {path: profile_server(path, [{"texts": [t]} for t in items], 2.0 if args.smoke else 10.0)
                             for path, items in (("/sentiment", texts), ("/pos-tag", zh))}
    result["elapsed_s"] = round(time.time() - began)
    report.write(result, args.out / ("smoke" if args.smoke else ""), args.name, report.benchmark, report.latency_plot)


if __name__ == "__main__":
    main()
