"""HTTP load generation on loopback: closed loop (N in flight) and open loop (constant arrival rate).

Open-loop latency is measured from each request's *scheduled* send time, so a server that falls behind
shows its queueing in the numbers (no coordinated omission). Every run is bounded in count and time.
aiohttp, not httpx: an httpx client cost several times the CPU per request, and on a small machine its own limit
read as a server collapse that was not there (bench/results/design-comparison-2026-11-26.txt).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import resource
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class RunResult:
    mode: str
    level: float  # concurrency (closed) or offered requests/s (open)
    items_per_request: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)  # of 200 answers
    statuses: Counter = field(default_factory=Counter)
    client_cpu_s: float = 0.0
    # (scheduled at s, latency ms, status, ms the load generator sent it late: open loop only, else 0)
    events: list[tuple[float, float, str, float]] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)  # open loop: how late the load generator sent each
    full_gc_ms: list[float] = field(default_factory=list)  # open loop: the load generator's full collections
    started: float = 0.0

    def summary(self) -> dict:
        ok = self.statuses.get(200, 0)
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {
            "mode": self.mode, "level": self.level, "items_per_request": self.items_per_request,
            "duration_s": round(self.duration_s, 2), "requests": sum(self.statuses.values()),
            "items_per_s": round(ok * self.items_per_request / self.duration_s, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1), "max_ms": round(float(np.max(lat)), 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))},
            "loadgen_cpu_percent": round(100 * self.client_cpu_s / self.duration_s, 1),
            **({"loadgen_send_lag_p50_ms": round(float(np.percentile(self.send_lag_ms, 50)), 1),
                "loadgen_send_lag_p99_ms": round(float(np.percentile(self.send_lag_ms, 99)), 1)}
               if self.send_lag_ms else {}),
            **({"loadgen_full_gcs": len(self.full_gc_ms), "loadgen_full_gc_max_ms": round(max(self.full_gc_ms), 1)}
               if self.full_gc_ms else {}),
        }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _send(client: aiohttp.ClientSession, path: str, payload: dict, result: RunResult, t0: float,
                lagged: bool = False) -> None:
    lag = (time.perf_counter() - t0) * 1000 if lagged else 0.0
    if lagged:  # open loop: part of the latency counted from the schedule is the load generator's own delay
        result.send_lag_ms.append(lag)
    try:
        async with client.post(path, json=payload) as r:
            await r.read()
            status = str(r.status)
    except TimeoutError:
        status = "timeout"
    except aiohttp.ClientError as e:
        status = type(e).__name__
    latency = (time.perf_counter() - t0) * 1000
    result.statuses[int(status) if status.isdigit() else status] += 1
    if status == "200":
        result.latencies_ms.append(latency)
    result.events.append((t0 - result.started, latency, status, lag))


def _session(base: str, timeout: float, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=timeout),
                                 connector=aiohttp.TCPConnector(limit=connections))


async def closed_loop(base: str, path: str, payloads: list[dict], concurrency: int, seconds: float,
                      items_per_request: int, timeout: float = 30.0) -> RunResult:
    """`concurrency` workers, each sending its next request when the last one is answered."""
    result = RunResult("closed", concurrency, items_per_request, 0.0)
    async with _session(base, timeout, concurrency) as client:
        start, cpu0 = time.perf_counter(), _cpu()
        result.started = start
        deadline = start + seconds

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < deadline:
                await _send(client, path, payloads[i % len(payloads)], result, time.perf_counter())
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        result.duration_s, result.client_cpu_s = time.perf_counter() - start, _cpu() - cpu0
    return result


def _closed_loop_part(args: tuple) -> RunResult:
    result = asyncio.run(closed_loop(*args))
    result.events = []  # not needed from a part, and costly to send back
    return result


class LoadPool:
    """Closed-loop load split over processes, for servers one Python process cannot saturate (a 16-core GPU
    machine answers more small requests per second than one asyncio client sends). The processes start once,
    up front, so their start-up is not in the measurement."""

    def __init__(self, procs: int):
        self.procs = procs
        self.pool = ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn"))
        list(self.pool.map(time.sleep, [0.5] * procs))  # start every process now

    def closed_loop(self, base: str, path: str, payloads: list[dict], concurrency: int, seconds: float,
                    items_per_request: int) -> RunResult:
        n = max(1, min(self.procs, concurrency))
        parts = list(self.pool.map(_closed_loop_part, [
            (base, path, payloads[k::n], concurrency // n + (k < concurrency % n), seconds, items_per_request)
            for k in range(n)]))
        merged = RunResult("closed", concurrency, items_per_request, max(r.duration_s for r in parts))
        for r in parts:
            merged.latencies_ms += r.latencies_ms
            merged.statuses.update(r.statuses)
            merged.client_cpu_s += r.client_cpu_s
        return merged

    def close(self) -> None:
        self.pool.shutdown()


async def open_loop(base: str, path: str, payloads: list[dict], rate: float, seconds: float,
                    items_per_request: int, timeout: float = 30.0, max_in_flight: int = 2000) -> RunResult:
    """Requests scheduled at a constant `rate`; latency counts from the scheduled time."""
    result = RunResult("open", rate, items_per_request, 0.0)
    # Only the requests in flight are kept: holding every finished task made the load generator's full garbage
    # collections walk them all, a stall that grew through a long run and read as the server's latency (README.md).
    in_flight: set[asyncio.Task] = set()
    drained = asyncio.Event()

    def release(task: asyncio.Task) -> None:
        in_flight.discard(task)
        if not in_flight:
            drained.set()

    with _full_collections(result):
        async with _session(base, timeout, max_in_flight) as client:
            start, cpu0 = time.perf_counter(), _cpu()
            result.started = start
            for i in range(int(rate * seconds)):
                scheduled = start + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(_send(client, path, payloads[i % len(payloads)], result, scheduled, True))
                in_flight.add(task)
                task.add_done_callback(release)
            while in_flight:  # not gather(): it would hold every task in flight now until the last one is done
                drained.clear()
                await drained.wait()
            result.duration_s, result.client_cpu_s = max(time.perf_counter() - start, seconds), _cpu() - cpu0
    return result


@contextmanager
def _full_collections(result: RunResult):
    """Record how long each of the load generator's full garbage collections stalled it: a stall delays sends
    and answers alike, and counts as server latency unless reported."""
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            result.full_gc_ms.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


def batch_stats(metrics_text: str, endpoint: str) -> dict:
    """The server's adaptive batch sizes for `endpoint` ("sentiment" or "pos_tag") from /metrics, summed over
    workers: {"sum": items, "count": model calls, "buckets": {le: cumulative count}}."""
    out: dict = {"sum": 0.0, "count": 0.0, "buckets": {}}
    for line in metrics_text.splitlines():
        if not line.startswith("senpos_batch_size") or f'endpoint="{endpoint}"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("senpos_batch_size_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out["buckets"][le] = out["buckets"].get(le, 0.0) + value
        elif line.startswith("senpos_batch_size_sum"):
            out["sum"] += value
        elif line.startswith("senpos_batch_size_count"):
            out["count"] += value
    return out


def stats_delta(before: dict, after: dict) -> dict:
    buckets = {k: after["buckets"][k] - before["buckets"].get(k, 0.0) for k in after["buckets"]}
    calls = after["count"] - before["count"]
    items = after["sum"] - before["sum"]
    return {"model_calls": calls, "items": items, "mean_batch": round(items / calls, 2) if calls else None,
            "buckets": buckets}
