"""Two source trees' servers A/B on this machine (a change that must not cost speed: before and after it).

Each tree's server in turn, both layouts, one item per request in a closed loop at 64 in flight (/sentiment and
/pos-tag), interleaved over rounds so a drift in the machine hits both trees alike. Both run in this
environment: the trees must need the same packages.

    git worktree add /tmp/before <commit>
    python -m bench.checkouts /tmp/before . --rounds 3 --out bench/results/refactor-<date>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path

from bench.harness import running_server
from bench.loadgen import closed_loop
from bench.payloads import reviews, sentences

LEVEL = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    payloads = {"/sentiment": [{"texts": [t]} for t in reviews(2000)],
                "/pos-tag": [{"texts": [t]} for t in sentences(2000)]}
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    out: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for layout in ("single", "split"):
            for name, tree in trees.items():
                with running_server({"SENPOS_LAYOUT": layout}, cwd=tree) as base:
                    for route, items in payloads.items():
                        asyncio.run(closed_loop(base, route, items, 32, 3, 1))  # warm-up
                        run = asyncio.run(closed_loop(base, route, items, LEVEL, args.seconds, 1)).summary()
                        key = f"{route} {layout} {name}"
                        out.setdefault(key, []).append(run["items_per_s"])
                        print(f"{key}: {run['items_per_s']} items/s {run['statuses']}", flush=True)
    result = {"trees": {k: str(v) for k, v in trees.items()}, "level": LEVEL, "seconds": args.seconds,
              "items_per_s": out}
    print(json.dumps(result))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        rows = ["| route, layout | before (items/s, each round) | after | after / before (medians) |",
                "|---|---|---|---|"]
        for route in payloads:
            for layout in ("single", "split"):
                b, a = out[f"{route} {layout} before"], out[f"{route} {layout} after"]
                rows.append(f"| {route}, {layout} | {' / '.join(f'{x:.0f}' for x in b)} | "
                            f"{' / '.join(f'{x:.0f}' for x in a)} | "
                            f"{statistics.median(a) / statistics.median(b):.2f} |")
        args.out.with_suffix(".md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
