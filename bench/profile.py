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


def record(pids: list[int], seconds: float):
    """Start py-spy (200 Hz) on each process for `seconds`; the function returned waits for it and counts the
    samples by bucket."""
    if not Path(PYSPY).exists():  # else every thread below fails on its own, silently, and the profile is empty
        raise SystemExit(f"{PYSPY} not found: py-spy is in the test extras (pip install -e '.[test]')")
    outs, threads = [], []
    for pid in pids:
        out = REPO / ".pytest_cache" / f"pyspy-{pid}.txt"
        out.unlink(missing_ok=True)
        outs.append(out)
        cmd = [PYSPY, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw", "-o", str(out),
               "--nonblocking"]
        threads.append(threading.Thread(target=subprocess.run, args=(cmd,), kwargs={"capture_output": True},
                                        daemon=True))
        threads[-1].start()

    def collect() -> Counter:
        for t in threads:
            t.join(timeout=seconds + 30)
        counts: Counter = Counter()
        for out in outs:
            for line in out.read_text().splitlines() if out.exists() else []:
                stack, _, n = line.rpartition(" ")
                counts[bucket(stack)] += int(n)
        return counts

    return collect


def profile(path: str, payloads: list[dict], seconds: float = 10.0) -> Counter:
    with server_process() as (base, proc):
        asyncio.run(closed_loop(base, path, payloads, 32, 3, 1))  # warm-up
        collect = record([w.pid for w in api_workers(proc.pid)], seconds)
        time.sleep(1)
        run = asyncio.run(closed_loop(base, path, payloads, 64, seconds + 2, 1)).summary()
        counts = collect()
    counts["_throughput"] = run["items_per_s"]
    return counts


def shares(counts: Counter) -> list[str]:
    """Markdown table rows: each bucket's share of the samples."""
    total = sum(counts.values()) or 1
    return [f"| {name} | {100 * n / total:.1f}% |" for name, n in counts.most_common()]


def main() -> None:
    lines = [f"# Profile of the server under load, {time.strftime('%Y-%m-%d')}", "",
             "`python -m bench.profile`: py-spy (200 Hz) on both worker processes while 64 requests are in flight, "
             "one item per request, 12 s; share of the samples in which a worker was busy.", ""]
    runs = (("/sentiment (IMDB reviews)", "/sentiment", [{"texts": [t]} for t in reviews(2000)]),
            ("/pos-tag (PFR dev sentences)", "/pos-tag", [{"texts": [t]} for t in sentences(2000)]))
    for title, path, payloads in runs:
        counts = profile(path, payloads)
        throughput = counts.pop("_throughput")
        lines += [f"## {title}: {throughput} items/s during the profile", "", "| where | share |", "|---|---|"]
        lines += shares(counts)
        lines.append("")
        print("\n".join(lines[-len(counts) - 4 :]), flush=True)
    out = REPO / "bench" / "results" / f"profile-{time.strftime('%Y-%m-%d')}.md"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
