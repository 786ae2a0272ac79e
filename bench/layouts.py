"""Layouts A/B on this machine: each configuration's server in turn, one review per request, closed loop at
8 / 32 / 64 / 128 in flight, interleaved over rounds so a drift in the machine hits every configuration alike.

    python -m bench.layouts --rounds 2      # prints one line per point and the JSON of all of them
"""

from __future__ import annotations

import argparse
import asyncio
import json

from bench.harness import running_server
from bench.loadgen import closed_loop
from bench.payloads import reviews

CONFIGS = {"single": {"SENPOS_LAYOUT": "single"},
           "split": {"SENPOS_LAYOUT": "split"},
           "split, 2 model calls": {"SENPOS_LAYOUT": "split", "SENPOS_MODEL_CALLS": "2"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    payloads = [{"texts": [t]} for t in reviews(2000)]
    out: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, env in CONFIGS.items():
            with running_server(env) as base:
                asyncio.run(closed_loop(base, "/sentiment", payloads, 32, 3, 1))  # warm-up
                for level in (8, 32, 64, 128):
                    run = asyncio.run(closed_loop(base, "/sentiment", payloads, level, args.seconds, 1)).summary()
                    out.setdefault(f"{name} @ {level}", []).append(run["items_per_s"])
                    print(f"{name} @ {level}: {run['items_per_s']} reviews/s {run['statuses']}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
