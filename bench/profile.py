"""Where the time goes inside the server under load: py-spy samples every worker process while a closed-loop
load runs, and each sample is put in one bucket by what its stack is doing.

    python -m bench.profile            # writes bench/results/profile-<date>.md
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.loadgen import closed_loop
from bench.payloads import reviews, sentences
from bench.stress import api_workers
from tests.server import server_process

REPO = Path(__file__).resolve().parents[1]
PYSPY = str(Path(sys.executable).with_name("py-spy"))
BUCKETS = [  # first match wins, checked against the whole stack
    ("onnxruntime (the model)", ("onnxruntime_inference_collection.py", "session.run", "InferenceSession.run")),
    ("jieba segmentation", ("jieba",)),
    ("spaCy tokenisation", ("spacy", "english.py")),
    ("encoding to ids, padding, batching in senpos", ("senpos/",)),
    ("request validation (pydantic)", ("pydantic",)),
    ("JSON (de)serialisation", ("json", "serde")),
    ("HTTP, ASGI, metrics, tracing (uvicorn, starlette, BentoML, OpenTelemetry, prometheus)",
     ("uvicorn", "starlette", "bentoml", "opentelemetry", "prometheus", "h11", "httptools")),
]


def bucket(stack: str) -> str:
    for name, needles in BUCKETS:
        if any(n in stack for n in needles):
            return name
    return "other (asyncio loop, threads, interpreter)"


def profile(path: str, payloads: list[dict], seconds: float = 10.0) -> Counter:
    counts: Counter = Counter()
    with server_process() as (base, proc):
        asyncio.run(closed_loop(base, path, payloads, 32, 3, 1))  # warm-up
        outs = []
        for worker in api_workers(proc.pid):
            out = REPO / ".pytest_cache" / f"pyspy-{worker.pid}.txt"
            outs.append(out)
            cmd = [PYSPY, "record", "-p", str(worker.pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw", "-o",
                   str(out), "--nonblocking"]
            threading.Thread(target=subprocess.run, args=(cmd,), kwargs={"capture_output": True}, daemon=True).start()
        time.sleep(1)
        run = asyncio.run(closed_loop(base, path, payloads, 64, seconds + 2, 1)).summary()
        time.sleep(3)
        for out in outs:
            for line in out.read_text().splitlines() if out.exists() else []:
                stack, _, n = line.rpartition(" ")
                counts[bucket(stack)] += int(n)
    counts["_throughput"] = run["items_per_s"]
    return counts


def main() -> None:
    lines = [f"# Profile of the server under load, {time.strftime('%Y-%m-%d')}", "",
             "`python -m bench.profile`: py-spy (200 Hz) on both worker processes while 64 requests are in flight, "
             "one item per request, 12 s; share of the samples in which a worker was busy.", ""]
    runs = (("/sentiment (IMDB reviews)", "/sentiment", [{"texts": [t]} for t in reviews(2000)]),
            ("/pos-tag (PFR dev sentences)", "/pos-tag", [{"texts": [t]} for t in sentences(2000)]))
    for title, path, payloads in runs:
        counts = profile(path, payloads)
        throughput = counts.pop("_throughput")
        total = sum(counts.values()) or 1
        lines += [f"## {title}: {throughput} items/s during the profile", "", "| where | share |", "|---|---|"]
        lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in counts.most_common()]
        lines.append("")
        print("\n".join(lines[-len(counts) - 4 :]), flush=True)
    out = REPO / "bench" / "results" / f"profile-{time.strftime('%Y-%m-%d')}.md"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
