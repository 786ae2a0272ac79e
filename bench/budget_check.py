"""A focused check of the batcher's latency budget: for each SENPOS_MAX_LATENCY_MS, p99 at an open-loop rate
(one review per request) and the throughput of client-batched requests (64 reviews each, 4 in flight).

    python -m bench.budget_check --rate 180 --budgets 500 1000 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bench.loadgen import closed_loop, open_loop
from bench.payloads import reviews
from tests.server import running_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=180.0, help="open-loop requests/s (about half saturation)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    texts = reviews(2000, seed=1)
    singles = [{"texts": [t]} for t in texts]
    batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts), 64)]
    rows = []
    for budget in args.budgets:
        with running_server({"SENPOS_MAX_LATENCY_MS": str(budget)}) as base:
            asyncio.run(closed_loop(base, "/sentiment", singles, 32, 3, 1))  # warm-up
            single = asyncio.run(open_loop(base, "/sentiment", singles, args.rate, args.seconds, 1)).summary()
            batched = asyncio.run(closed_loop(base, "/sentiment", batches, 4, args.seconds, 64)).summary()
        rows.append({"max_latency_ms": budget, "open_loop": single, "batched_64_c4": batched})
        print(f"budget {budget:5d} ms: open {args.rate:.0f} req/s p50 {single['p50_ms']} p99 {single['p99_ms']} ms "
              f"{single['statuses']}; batched x64 c=4 {batched['items_per_s']} items/s {batched['statuses']}",
              flush=True)
    out = Path("bench/results") / f"budget-check-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps({"command": "python -m bench.budget_check", "rate": args.rate, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
