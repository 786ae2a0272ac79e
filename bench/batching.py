"""Choose the adaptive-batching settings by measurement: for each (max_batch_size, max_latency_ms), start the
real server and drive /sentiment with one review per request (closed loop), recording throughput, latency
and the batch sizes the server formed.

    python -m bench.batching --seconds 15 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

import httpx

from bench.loadgen import batch_stats, closed_loop, stats_delta
from bench.payloads import reviews
from tests.server import running_server

# (max_batch_size, max_latency_ms, model threads, API workers)
# Run 1 (bench/results/batching-grid1.json, 8 s a point) compared latency budgets, threads and workers;
# run 2 (batching-grid2.json, 15 s a point) the batch sizes at the chosen settings.
GRIDS = {
    "1": [(64, 2000, 1, 2), (64, 500, 1, 2), (64, 200, 1, 2), (32, 500, 1, 2), (128, 500, 1, 2),
          (64, 500, 1, 3), (64, 500, 2, 2), (64, 500, 1, 1)],
    "2": [(16, 500, 1, 2), (32, 500, 1, 2), (64, 500, 1, 2), (128, 500, 1, 2)],
}


def measure(max_batch: int, max_latency: int, seconds: float, concurrency: int, threads: int = 0,
            workers: int = 2) -> dict:
    payloads = [{"texts": [t]} for t in reviews(2000, seed=1)]
    env = {"SENPOS_MAX_BATCH_SIZE": str(max_batch), "SENPOS_MAX_LATENCY_MS": str(max_latency),
           "SENPOS_MODEL_THREADS": str(threads), "SENPOS_API_WORKERS": str(workers)}
    with running_server(env) as base:
        asyncio.run(closed_loop(base, "/sentiment", payloads, concurrency, 3, 1))  # warm-up
        before = batch_stats(httpx.get(f"{base}/metrics").text, "sentiment")
        run = asyncio.run(closed_loop(base, "/sentiment", payloads, concurrency, seconds, 1))
        after = batch_stats(httpx.get(f"{base}/metrics").text, "sentiment")
    return {"max_batch_size": max_batch, "max_latency_ms": max_latency, "model_threads": threads,
            "api_workers": workers, **run.summary(),
            "server_batches": stats_delta(before, after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for max_batch, max_latency, threads, workers in GRIDS[args.grid]:
        row = measure(max_batch, max_latency, args.seconds, args.concurrency, threads, workers)
        rows.append(row)
        print(f"batch {max_batch:4d} latency {max_latency:5d} ms, model threads {threads}, API workers {workers}: "
              f"{row['items_per_s']:7.1f} reviews/s "
              f"p50 {row['p50_ms']:6.1f} ms p99 {row['p99_ms']:7.1f} ms "
              f"mean batch {row['server_batches']['mean_batch']}", flush=True)
    out = args.out or Path(f"bench/results/batching-grid{args.grid}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                                    "command": f"python -m bench.batching --grid {args.grid} --seconds {args.seconds} "
                                               f"--concurrency {args.concurrency}", "concurrency": args.concurrency,
                                    "seconds": args.seconds, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
