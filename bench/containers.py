"""Containers A/B: the single container (docker-compose.yml) against the split topology (docker-compose.split.yml:
3 api replicas and the model service behind the gateway), as shipped, on this machine's Docker engine. One review
per request, closed loop at 8 / 32 / 64 in flight, the topologies taking turns over rounds.

Needs a running Docker engine with Compose v2 and the images (`make test-split` builds them and installs Compose).

    python -m bench.containers --rounds 2 --out bench/results/containers-YYYY-MM-DD.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from bench.harness import answers_sentiment
from bench.loadgen import closed_loop
from bench.payloads import reviews

REPO = Path(__file__).resolve().parents[1]
TOPOLOGIES = {"single container": "docker-compose.yml", "split, 3 api replicas": "docker-compose.split.yml"}
LEVELS = (8, 32, 64)


def compose(file: str, project: str, port: int, *args: str) -> None:
    env = {**os.environ, "SENPOS_HOST_PORT": str(port), "SENPOS_API_KEY": ""}
    cache = os.environ.get("SENPOS_CONTAINER_CACHE", "/var/tmp/senpos-container")
    env.setdefault("DOCKER_CONFIG", f"{cache}/docker-config")  # where scripts/container-lib.sh puts Compose v2
    subprocess.run(["docker", "compose", "-p", project, "-f", file, *args], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def unused_port() -> int:
    """A port nothing listens on now, for Docker to publish on (Docker binds it, not this process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(file: str, seconds: float, payloads: list[dict]) -> dict[int, dict]:
    project, port = f"senpos-bench-{os.getpid()}", unused_port()
    base = f"http://127.0.0.1:{port}"
    compose(file, project, port, "up", "-d", "--wait", "--wait-timeout", "400")
    try:
        deadline = time.monotonic() + 120
        while not answers_sentiment(base):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{file} did not answer within 120 s")
            time.sleep(1)
        asyncio.run(closed_loop(base, "/sentiment", payloads, 32, 5, 1))  # warm-up
        return {level: asyncio.run(closed_loop(base, "/sentiment", payloads, level, seconds, 1)).summary()
                for level in LEVELS}
    finally:
        compose(file, project, port, "down", "--timeout", "10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, help="a Markdown results file")
    args = parser.parse_args()
    payloads = [{"texts": [t]} for t in reviews(2000)]
    runs: dict[str, list[dict[int, dict]]] = {name: [] for name in TOPOLOGIES}
    for _ in range(args.rounds):
        for name, file in TOPOLOGIES.items():
            runs[name].append(measure(file, args.seconds, payloads))
            print(name, {lv: (r["items_per_s"], r["p99_ms"], r["statuses"]) for lv, r in runs[name][-1].items()},
                  flush=True)
    rows = ["| topology | round | " + " | ".join(f"{lv} in flight: reviews/s (p99 ms)" for lv in LEVELS) + " |",
            "|---|---|" + "---|" * len(LEVELS)]
    for name, rounds in runs.items():
        for i, run in enumerate(rounds, 1):
            rows.append(f"| {name} | {i} | " + " | ".join(f"{run[lv]['items_per_s']:,.0f} ({run[lv]['p99_ms']:.0f})"
                                                        for lv in LEVELS) + " |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(f"# Containers: single container against the split topology\n\n`python -m bench.containers "
                            f"--rounds {args.rounds} --seconds {args.seconds:g}` on this machine's Docker engine, "
                            "one review per request, closed loop (aiohttp), 2 cores.\n\n" + table + "\n\n```json\n"
                            + json.dumps(runs, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
