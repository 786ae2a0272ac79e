"""Stress and fault runs against the real server (`make stress`; `--smoke` for CI). Loopback only, every
loop bounded in count and time.

1. schemathesis: every check, over at least 2,000 cases generated from the service's own OpenAPI document;
2. overload: 4x the saturation rate (open loop): only 200/429/503, each fast; throughput back within 5 s;
3. soak: 70% of saturation: zero errors, resident memory growth < 10%, latency stable;
4. SIGKILL of an API worker under load: recovery on its own, failed requests counted;
5. SIGTERM under load: in-flight requests complete, new ones are refused cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench import report
from bench.harness import REPO, api_workers, server_process
from bench.loadgen import closed_loop, open_loop
from bench.payloads import reviews
from bench.usage import cpu_use, tree_rss_mb

SHED = {"200", "429", "503"}


def saturation(base: str, pid: int, payloads: list[dict], seconds: float, p99_budget_ms: float = 500) -> dict:
    """The highest arrival rate the service sustains, one review per request. The closed-loop peak (64 in flight)
    is an upper bound: a closed loop waits for answers, so it never offers more than is served. Open-loop runs of
    `seconds` each then step down from 90% of it; the first rate served in full (every answer 200, goodput >= 97%
    of the offered rate, p99 within `p99_budget_ms`, so no queue builds up) is the saturation rate that the
    overload and soak runs are multiples of. The windows must be long: a short window passes rates at which a
    long one shows a queue building up (README.md, the stress results)."""
    asyncio.run(closed_loop(base, "/sentiment", payloads, 32, min(seconds, 5), 1))  # warm-up
    peak = asyncio.run(closed_loop(base, "/sentiment", payloads, 64, min(seconds, 15), 1)).summary()["items_per_s"]
    tried = []
    for fraction in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4):
        rate = round(peak * fraction, 1)
        cpu = cpu_use(api_workers(pid))
        run = asyncio.run(open_loop(base, "/sentiment", payloads, rate, seconds, 1)).summary()
        tried.append({"rate": rate, "items_per_s": run["items_per_s"], "p99_ms": run["p99_ms"],
                      "statuses": run["statuses"], "loadgen_cpu_percent": run["loadgen_cpu_percent"], **cpu()})
        print("  saturation search", tried[-1], flush=True)
        if set(run["statuses"]) == {"200"} and run["items_per_s"] >= 0.97 * rate and run["p99_ms"] <= p99_budget_ms:
            break
        time.sleep(5)  # let the queue drain before the next rate
    else:
        rate = round(peak * 0.3, 1)
    return {"rate": rate, "closed_loop_peak": peak, "window_s": seconds, "p99_budget_ms": p99_budget_ms,
            "tried": tried}


def run_schemathesis(base: str, examples: int, smoke: bool) -> dict:
    """Every check of schemathesis (the repository's schemathesis.toml), every operation, a fixed seed: the
    document must say exactly what the server accepts. The full run must generate at least 2,000 cases."""
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(REPO / "schemathesis.toml"),
           "run", f"{base}/docs.json", "--checks", "all", "--max-examples", str(examples), "--seed", "20261207",
           "--workers", "1", "--phases", "examples,coverage,fuzzing"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=REPO)
    m = re.search(r"(\d+) generated, (.*)", proc.stdout)
    generated = int(m.group(1)) if m else 0
    enough = smoke or generated >= 2000
    return {"command": " ".join(cmd[1:]), "exit_code": proc.returncode, "generated": generated,
            "summary": f"{generated} cases: {m.group(0)}" if m else None, "passed": proc.returncode == 0 and enough,
            "failures": None if proc.returncode == 0 else proc.stdout[-4000:]}


def shed_count(metrics_text: str) -> float:
    """Requests the service refused (503) for /sentiment, summed over workers, from its own counter."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith('senpos_shed_requests_total{endpoint="sentiment"'))


def overload(base: str, pid: int, payloads: list[dict], sat: float, seconds: float) -> dict:
    shed_before = shed_count(httpx.get(f"{base}/metrics").text)
    cpu = cpu_use(api_workers(pid))
    run = asyncio.run(open_loop(base, "/sentiment", payloads, 4 * sat, seconds, 1, timeout=30))
    busy = cpu()
    shed = shed_count(httpx.get(f"{base}/metrics").text) - shed_before
    statuses = {s for _, _, s, _ in run.events}
    refused = [lat for _, lat, s, _ in run.events if s != "200"]
    # The same from the moment the load generator got the request out: the server's (and the kernel's) part.
    refused_sent = [lat - lag for _, lat, s, lag in run.events if s != "200"]
    after = asyncio.run(closed_loop(base, "/sentiment", payloads, 64, 5, 1)).summary()["items_per_s"]
    return {"offered_per_s": round(4 * sat), "seconds": seconds, **run.summary(),
            "only_200_429_503": statuses <= SHED,
            "refusal_p50_ms": round(float(np.percentile(refused, 50)), 1) if refused else None,
            "refusal_p99_ms": round(float(np.percentile(refused, 99)), 1) if refused else None,
            "refusal_after_send_p50_ms": round(float(np.percentile(refused_sent, 50)), 1) if refused else None,
            "refusal_after_send_p99_ms": round(float(np.percentile(refused_sent, 99)), 1) if refused else None,
            "server_shed_count": shed, **busy,
            "after_load_items_per_s_5s": after, "recovered_within_5s": after >= 0.8 * sat}


def soak(base: str, pid: int, payloads: list[dict], sat: float, seconds: float) -> dict:
    window = max(seconds / 10, 1.0)
    rss, cpu_per_window, stop = [round(tree_rss_mb(pid), 1)], [], threading.Event()
    cpu = cpu_use(api_workers(pid))

    def sample():
        while not stop.wait(window):
            rss.append(round(tree_rss_mb(pid), 1))
            cpu_per_window.append(cpu())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run = asyncio.run(open_loop(base, "/sentiment", payloads, 0.7 * sat, seconds, 1))
    stop.set()
    sampler.join()
    rss.append(round(tree_rss_mb(pid), 1))
    p99s = []
    for k in range(int(seconds // window)):
        lat = [lat for t, lat, s, _ in run.events if s == "200" and k * window <= t < (k + 1) * window]
        if lat:
            p99s.append(round(float(np.percentile(lat, 99)), 1))
    errors = sum(v for k, v in run.statuses.items() if str(k) != "200")
    # Stable: no window's p99 more than twice the median window's (no drift, no build-up).
    stable = bool(p99s) and max(p99s) <= 2 * float(np.median(p99s))
    return {"rate_per_s": round(0.7 * sat, 1), **run.summary(), "errors": errors, "rss_mb": rss,
            "rss_growth": round(rss[-1] / rss[0] - 1, 3), "p99_ms_per_window": p99s, "latency_stable": stable,
            "cpu_per_window": cpu_per_window}


def kill_worker(base: str, pid: int, payloads: list[dict], seconds: float) -> dict:
    victims = api_workers(pid)

    def killer():
        time.sleep(seconds / 4)
        os.kill(victims[0].pid, signal.SIGKILL)

    threading.Thread(target=killer, daemon=True).start()
    run = asyncio.run(closed_loop(base, "/sentiment", payloads, 16, seconds, 1))
    deadline, recovered_after = time.monotonic() + 60, None
    start = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{base}/sentiment", json={"texts": ["back?"]}, timeout=5).status_code == 200 and \
                    len(api_workers(pid)) >= len(victims):
                recovered_after = round(time.monotonic() - start, 1)
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    failed = sum(v for k, v in run.statuses.items() if str(k) != "200")
    return {"killed_pid": victims[0].pid, **run.summary(), "failed_requests": failed,
            "recovered": recovered_after is not None, "recovered_s_after_load": recovered_after}


def graceful_shutdown(proc: subprocess.Popen, base: str, payloads: list[dict], seconds: float) -> dict:
    def terminate():
        time.sleep(seconds / 3)
        os.kill(proc.pid, signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    run = asyncio.run(closed_loop(base, "/sentiment", payloads, 16, seconds, 1, timeout=30))
    proc.wait(timeout=60)
    five_xx = sum(v for k, v in run.statuses.items() if str(k).startswith("5"))
    return {**run.summary(), "server_exit_code": proc.returncode, "5xx": five_xx,
            "after_shutdown": "connection refused" if any("Connect" in str(k) for k in run.statuses) else "no refusals"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--saturation-seconds", type=float, default=60, help="each open-loop step of the search")
    parser.add_argument("--examples", type=int, default=1000,
                        help="schemathesis examples per operation (the run must generate >= 2,000 cases)")
    args = parser.parse_args()
    smoke = args.smoke
    payloads = [{"texts": [t]} for t in reviews(1000, seed=2, smoke=smoke)]
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "smoke": smoke, "command": "python -m bench.stress "
                    + " ".join(sys.argv[1:]), "cpus": os.cpu_count()}
    with server_process() as (base, proc):
        result["saturation"] = saturation(base, proc.pid, payloads, 2 if smoke else args.saturation_seconds)
        sat = result["saturation"]["rate"]
        print("saturation", result["saturation"], flush=True)
        result["schemathesis"] = run_schemathesis(base, 10 if smoke else args.examples, smoke)
        print("schemathesis", result["schemathesis"], flush=True)
        result["overload"] = overload(base, proc.pid, payloads, sat, 3 if smoke else 60)
        print("overload", result["overload"], flush=True)
        result["soak"] = soak(base, proc.pid, payloads, sat, 5 if smoke else args.soak_seconds)
        print("soak", result["soak"], flush=True)
        result["kill_worker"] = kill_worker(base, proc.pid, payloads, 4 if smoke else 20)
        print("kill_worker", result["kill_worker"], flush=True)
        result["sigterm"] = graceful_shutdown(proc, base, payloads, 4 if smoke else 12)
        print("sigterm", result["sigterm"], flush=True)
    report.write(result, REPO / "bench" / "results" / ("smoke" if smoke else ""), "stress-" + time.strftime("%Y-%m-%d"),
                 report.stress)


if __name__ == "__main__":
    main()
