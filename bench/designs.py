"""Compare serving designs on this machine: one review per request, closed loop at 8, 32, 64 and 128 requests
in flight, 8 s each, the server's batch sizes from /metrics.

    python -m bench.designs service.service:Senpos sentiment            # the shipped single-service design
    # the composition design (API service -> batching model service via bentoml.depends), from git history:
    git worktree add /tmp/composition 40a4e02
    cp bench/designs.py bench/harness.py bench/loadgen.py /tmp/composition/bench/
    cd /tmp/composition && python -m bench.designs service.service:Senpos score_ids SENPOS_MODEL_THREADS=1

Results: bench/results/design-comparison-2026-11-26.txt.
"""

from __future__ import annotations

import asyncio
import sys

import httpx

from bench.harness import running_server
from bench.loadgen import batch_stats, closed_loop, stats_delta
from bench.payloads import reviews


def main() -> None:
    target, method, *overrides = sys.argv[1:]
    payloads = [{"texts": [t]} for t in reviews(2000, seed=1)]
    with running_server(dict(kv.split("=", 1) for kv in overrides), target=target) as base:
        asyncio.run(closed_loop(base, "/sentiment", payloads, 32, 3, 1))  # warm-up
        for concurrency in (8, 32, 64, 128):
            before = batch_stats(httpx.get(f"{base}/metrics").text, method)
            r = asyncio.run(closed_loop(base, "/sentiment", payloads, concurrency, 8, 1)).summary()
            d = stats_delta(before, batch_stats(httpx.get(f"{base}/metrics").text, method))
            print(target, concurrency, r["items_per_s"], r["p50_ms"], r["p99_ms"], r["statuses"], "batch",
                  d["mean_batch"], "loadgen cpu", r["loadgen_cpu_percent"], flush=True)


if __name__ == "__main__":
    main()
