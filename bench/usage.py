"""Where a server's resources go while a load runs: CPU time per worker, resident memory, the GPU's utilisation,
and py-spy samples of the workers put in buckets by what their stacks are doing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.harness import LOGS, api_workers, if_alive, process_tree, server_process
from bench.loadgen import closed_loop


def cpu_use(workers: list[psutil.Process]) -> Callable[[], dict]:
    """Start counting CPU time; each call of the returned function says how busy the machine was (% of all its
    cores) and each of `workers` (% of one core) since the start or the call before: where the cores went.
    (Deltas of CPU times, not psutil.cpu_percent: that keeps its last sample per thread, and a sampler thread's
    first reading came back 0.)"""

    def now() -> tuple[float, float, float, list[float]]:
        t = psutil.cpu_times()
        worker_s = [if_alive(lambda w=w: sum(w.cpu_times()[:2]), 0.0) for w in workers]
        return time.monotonic(), sum(t) - t.idle - getattr(t, "iowait", 0.0), sum(t), worker_s

    last = now()

    def read() -> dict:
        nonlocal last
        (t0, busy0, all0, w0), (t1, busy1, all1, w1) = last, now()
        last = (t1, busy1, all1, w1)
        return {"machine_busy_percent": round(100 * (busy1 - busy0) / max(all1 - all0, 1e-9), 1),
                "api_workers_percent": [max(0, round(100 * (b - a) / max(t1 - t0, 1e-9)))
                                        for a, b in zip(w0, w1, strict=True)]}

    return read


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, MiB."""
    return sum(if_alive(lambda p=p: p.memory_info().rss, 0) for p in process_tree(pid)) / 2**20


class GpuSampler:
    """Samples the GPU's utilisation and memory (NVML) every 0.2 s in a thread, while a measurement runs."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVIDIA driver here: nothing to sample
            self.nvml = None

    def __enter__(self) -> GpuSampler:
        self.samples: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while self.nvml and not self.stop.wait(0.2):
            util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
            self.samples.append((util.gpu, self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used // 2**20))

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        return {"gpu_util_mean_percent": round(sum(util) / len(util), 1), "gpu_util_max_percent": max(util),
                "gpu_memory_used_mib_max": max(m for _, m in self.samples)}


def measured(fn: Callable[[], list[dict]], workers: list[psutil.Process]) -> list[dict]:
    """Run `fn()` and return its rows with the API workers' CPU use and the GPU's utilisation attached."""
    cpu_since = cpu_use(workers)
    with GpuSampler() as gpu:
        rows = fn()
    cpu = sorted(cpu_since()["api_workers_percent"])
    for row in rows:
        row["api_worker_cpu_percent"] = cpu
        row["gpu"] = gpu.summary()
    return rows


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


def record(pids: list[int], seconds: float) -> Callable[[], Counter]:
    """Start py-spy (200 Hz) on each process for `seconds`; the function returned waits for it and counts the
    samples by bucket."""
    if not Path(PYSPY).exists():  # else every thread below fails on its own, silently, and the profile is empty
        raise SystemExit(f"{PYSPY} not found: py-spy is in the test extras (pip install -e '.[test]')")
    outs, threads = [], []
    for pid in pids:
        out = LOGS / f"pyspy-{pid}.txt"
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
                if n.isdigit():  # py-spy's raw output can hold lines that are not `stack count` (seen: "(}")
                    counts[bucket(stack)] += int(n)
        return counts

    return collect


def profile_server(path: str, payloads: list[dict], seconds: float = 10.0) -> dict:
    """A fresh server's API workers sampled for `seconds` while 64 requests to `path` are in flight, one item per
    request: {"items_per_s": during the profile, "load_s": how long the load ran, "samples": {bucket: count}}."""
    with server_process() as (base, proc):
        asyncio.run(closed_loop(base, path, payloads, 32, 3, 1))  # warm-up
        collect = record([w.pid for w in api_workers(proc.pid)], seconds)
        time.sleep(1)
        run = asyncio.run(closed_loop(base, path, payloads, 64, seconds + 2, 1)).summary()
        counts = collect()
    return {"items_per_s": run["items_per_s"], "load_s": seconds + 2, "samples": dict(counts)}
