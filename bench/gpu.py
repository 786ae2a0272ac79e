"""The GPU proof in one run: CUDA and CPU providers side by side on the same machine, same payloads.

    python -m bench.gpu                      # on a machine with an NVIDIA GPU and onnxruntime-gpu
    python -m bench.gpu --smoke              # a seconds-long rehearsal; on a machine without CUDA, CPU only

1. what onnxruntime sees (version, providers, the GPU) and what the service logs at start;
2. parity: CUDA outputs against CPU outputs on real reviews and sentences, same batches (max |diff|), with the
   service's CUDA settings and, for comparison, with TF32 on and cuDNN's exhaustive search;
3. the limit: each model alone (no HTTP), CUDA in one process at batch 64 and 256, CPU one process per core;
4. the service on each provider: one item per request and client-batched (64 items per request), for
   /sentiment and /pos-tag, with the load split over several client processes; the workers' CPU use, the
   GPU's utilisation, and a py-spy profile of some workers during the one-per-request run.

Results: bench/results/<name>.json and .md (`--out` elsewhere). Not part of `make bench`: it needs the GPU build
of onnxruntime, which must never share an environment with the CPU build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

from bench.loadgen import LoadPool
from bench.payloads import reviews, sentences
from bench.profile import record, shares
from bench.run import _model_alone, limit_sentiment, pos_in_process, sweep
from bench.stress import api_workers, cpu_use
from senpos import runtime
from service.settings import Settings
from tests.server import server_process

REPO = Path(__file__).resolve().parents[1]
SENTIMENT, POS = REPO / "models" / "sentiment", REPO / "models" / "pos"


def environment() -> dict:
    import onnxruntime as ort

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True) if shutil.which("nvidia-smi") else None
    return {"onnxruntime": ort.__version__, "onnxruntime_path": str(Path(ort.__file__).parent),
            "available_providers": ort.get_available_providers(), "device": ort.get_device(),
            "gpu": smi.stdout.strip() if smi and smi.returncode == 0 else None,
            "platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}


@contextmanager
def cuda_options(**overrides: str):
    """Sessions made inside get the service's CUDA settings with `overrides`; the settings are restored after."""
    saved = runtime.CUDA_OPTIONS
    runtime.CUDA_OPTIONS = {**saved, **overrides}
    try:
        yield
    finally:
        runtime.CUDA_OPTIONS = saved


def parity(texts: list[str], zh: list[str]) -> dict:
    """Max |CUDA - CPU| over real inputs, the same batches on both (the CUDA predictor gets the CPU's cost
    model, so the plans match)."""
    from senpos.pos import PosTagger
    from senpos.sentiment import SentimentPredictor

    cpu_s, cpu_p = SentimentPredictor(SENTIMENT, provider="cpu"), PosTagger(POS, provider="cpu")
    seqs = cpu_s.encode_many(texts)
    encoded = [cpu_p.encode(cpu_p.segment(t)[0]) for t in zh]
    want_s, want_p = cpu_s.predict_ids(seqs), cpu_p.scores_encoded(encoded)
    out = {}
    for name, overrides in {"service settings": {}, "tf32 on": {"use_tf32": "1"}}.items():
        with cuda_options(**overrides):
            gpu_s, gpu_p = SentimentPredictor(SENTIMENT, provider="cuda"), PosTagger(POS, provider="cuda")
        gpu_s.cost, gpu_p.cost = cpu_s.cost, cpu_p.cost
        got_s, got_p = gpu_s.predict_ids(seqs), gpu_p.scores_encoded(encoded)
        diff_p = max(float(np.abs(a - b).max()) for a, b in zip(want_p, got_p, strict=True))
        same_tags = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(want_p, got_p, strict=True))
        out[name] = {
            "cuda_options": gpu_s.session.get_provider_options().get(runtime.CUDA, {}),
            "sentiment_max_abs_diff": float(np.abs(want_s - got_s).max()),
            "sentiment_same_label": int(((want_s > 0.5) == (got_s > 0.5)).sum()), "reviews": len(seqs),
            "pos_max_abs_diff": diff_p, "pos_same_tag": same_tags, "words": sum(len(a) for a in want_p)}
        out[name]["within_1e-4"] = out[name]["sentiment_max_abs_diff"] <= 1e-4 and diff_p <= 1e-4
        print(f"  parity [{name}]: {out[name]}", flush=True)
    return out


def pos_conv_search(zh: list[str]) -> dict:
    """The tagger alone over real sentences (every batch a new shape) with cuDNN's search heuristic (the service)
    and exhaustive (onnxruntime's default): the first pass pays the search, the second shows the steady state."""
    from senpos.pos import PosTagger

    out = {}
    for search in ("HEURISTIC", "EXHAUSTIVE"):
        with cuda_options(cudnn_conv_algo_search=search):
            tagger = PosTagger(POS, provider="cuda")
        encoded = [tagger.encode(tagger.segment(t)[0]) for t in zh]
        passes = []
        for _ in range(2):
            t0 = time.perf_counter()
            tagger.scores_encoded(encoded)
            passes.append(round(len(encoded) / (time.perf_counter() - t0), 1))
        out[search] = {"first_pass_sentences_per_s": passes[0], "second_pass_sentences_per_s": passes[1]}
    print(f"  cuDNN conv search: {out}", flush=True)
    return out


def limit(texts: list[str], zh: list[str], seconds: float, cuda: bool) -> dict:
    out = {"cpu": {"sentiment": limit_sentiment(texts, seconds), "pos": pos_in_process(zh)}}
    if cuda:
        out["cuda"] = {"sentiment": {}, "pos": {}}
        for batch in (64, 256):
            rate, tokenise = _model_alone(texts, seconds, threads=1, provider="cuda", max_batch=batch)
            out["cuda"]["sentiment"][f"batch_{batch}_reviews_per_s"] = round(rate, 1)
            out["cuda"]["pos"][f"batch_{batch}"] = pos_in_process(zh, provider="cuda", max_batch=batch)
        out["cuda"]["sentiment"]["tokenise_reviews_per_s_one_core"] = round(tokenise, 1)
    print(f"  limit: {json.dumps(out)}", flush=True)
    return out


class Sampler:
    """Samples the GPU's utilisation and memory (NVML) every 0.2 s in a thread, while a measurement runs."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVIDIA driver here: nothing to sample
            self.nvml = None

    def __enter__(self) -> Sampler:
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


def measured(fn, workers: list[psutil.Process]):
    """Run `fn()` and return its rows with the API workers' CPU use and the GPU's utilisation attached."""
    cpu_since = cpu_use(workers)
    with Sampler() as gpu:
        rows = fn()
    cpu = sorted(cpu_since()["api_workers_percent"])
    for row in rows:
        row["api_worker_cpu_percent"] = cpu
        row["gpu"] = gpu.summary()
    return rows


def service(provider: str, layout: str, texts: list[str], zh: list[str], seconds: float, workers: int,
            max_batch: int, pool: LoadPool, levels: dict, profile_workers: int) -> dict:
    env = {"SENPOS_PROVIDER": provider, "SENPOS_LAYOUT": layout, "SENPOS_API_WORKERS": str(workers),
           "SENPOS_MAX_BATCH_SIZE": str(max_batch), "SENPOS_MAX_ITEMS": str(max(256, max_batch))}
    out: dict = {"env": env}
    t0 = time.perf_counter()
    with server_process(env, ready_timeout=300) as (base, proc):
        out["start_s"] = round(time.perf_counter() - t0, 1)
        procs = api_workers(proc.pid)
        singles = [{"texts": [t]} for t in texts]
        pool.closed_loop(base, "/sentiment", singles, 64, 2, 1)  # warm-up
        collect = record([w.pid for w in procs[:profile_workers]], seconds) if profile_workers else None
        out["sentiment_one_per_request"] = measured(lambda: sweep(
            base, "/sentiment", singles, 1, levels["one"][:1], seconds, "sentiment", pool), procs)
        if collect:
            counts = collect()
            out["profile_one_per_request"] = {"workers_sampled": profile_workers, "samples": dict(counts),
                                              "table": shares(counts)}
        out["sentiment_one_per_request"] += measured(lambda: sweep(
            base, "/sentiment", singles, 1, levels["one"][1:], seconds, "sentiment", pool), procs)
        batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts), 64)]
        out["sentiment_batched_64"] = measured(lambda: sweep(
            base, "/sentiment", batches, 64, levels["batched"], seconds, "sentiment", pool), procs)
        zh_singles = [{"texts": [t]} for t in zh]
        out["pos_one_per_request"] = measured(lambda: sweep(
            base, "/pos-tag", zh_singles, 1, levels["one"][:1], seconds, "pos_tag", pool), procs)
        out["pos_batched_64"] = measured(lambda: sweep(
            base, "/pos-tag", [{"texts": zh[i : i + 64]} for i in range(0, len(zh), 64)], 64, levels["batched"][:1],
            seconds, "pos_tag", pool), procs)
        chars = sum(map(len, zh)) / len(zh)
        for key in ("pos_one_per_request", "pos_batched_64"):
            for row in out[key]:
                row["chars_per_s"] = round(row["items_per_s"] * chars)
        log = (REPO / ".pytest_cache" / f"server-{base.rsplit(':', 1)[1]}.log").read_text(errors="replace")
    out["log_lines_runs_on"] = sorted({m.group(0) for m in re.finditer(r"\S+ runs on \w+", log)})
    out["log_models_loaded"] = len(re.findall(r"(models loaded|model process): sentiment on \w+, pos on \w+", log))
    out["log_fell_back"] = len(re.findall(r"fell back to", log))
    out["log_excerpt"] = [line for line in log.splitlines()
                          if "runs on" in line or "models loaded" in line or "model process" in line][:6]
    return out


def headline(r: dict) -> dict:
    """The best level of each run, per provider: what the README quotes (bench/results/gpu-latest.json)."""
    best = {key: {provider: max((row["items_per_s"] for row in s[run]), default=0.0)
                  for provider, s in r["service"].items()}
            for key, run in (("sentiment_one_per_request", "sentiment_one_per_request"),
                             ("sentiment_client_batched", "sentiment_batched_64"),
                             ("pos_one_per_request", "pos_one_per_request"), ("pos_client_batched", "pos_batched_64"))}
    return {"date": r["date"][:10], "gpu": r["environment"]["gpu"], "command": r["command"],
            "layouts": {provider: s["env"]["SENPOS_LAYOUT"] for provider, s in r["service"].items()}, **best}


def markdown(r: dict) -> str:
    lines = [f"# GPU proof: {r['environment']['gpu'] or 'no GPU'}, {r['date']}", "",
             f"`{r['command']}`, {r['environment']['cpus']} CPUs, onnxruntime {r['environment']['onnxruntime']} "
             f"({', '.join(r['environment']['available_providers'])}).", ""]
    if r.get("parity"):
        lines += ["## Parity: CUDA against CPU, same inputs, same batches", "",
                  "| CUDA settings | sentiment max abs diff | same label | POS max abs diff | same tag | within 1e-4 |",
                  "|---|---|---|---|---|---|"]
        for name, p in r["parity"].items():
            lines.append(f"| {name} | {p['sentiment_max_abs_diff']:.2e} | {p['sentiment_same_label']}/{p['reviews']} "
                         f"| {p['pos_max_abs_diff']:.2e} | {p['pos_same_tag']}/{p['words']} | {p['within_1e-4']} |")
        lines.append("")
    lim = r["limit"]
    lines += ["## The limit: each model alone (no HTTP)", "", "| provider | sentiment reviews/s | POS model chars/s | "
              "POS pipeline chars/s (one process) |", "|---|---|---|---|",
              f"| CPU, best of one process / one per core | {lim['cpu']['sentiment']['reviews_per_s']} | "
              f"{lim['cpu']['pos']['model_chars_per_s']} | {lim['cpu']['pos']['pipeline_chars_per_s']} |"]
    for batch in (64, 256):
        if "cuda" in lim:
            pos, rate = lim["cuda"]["pos"][f"batch_{batch}"], lim["cuda"]["sentiment"][f"batch_{batch}_reviews_per_s"]
            lines.append(f"| CUDA, one process, batch {batch} | {rate} | {pos['model_chars_per_s']} | "
                         f"{pos['pipeline_chars_per_s']} |")
    lines += ["", f"Tokenisation alone (spaCy): {lim['cpu']['sentiment']['tokenise_reviews_per_s_one_core']} reviews/s "
              f"on one core; jieba.posseg {lim['cpu']['pos']['jieba_posseg_chars_per_s']} chars/s.", ""]
    if r.get("conv_search"):
        lines += ["cuDNN convolution search for the tagger (sentences/s, first pass / second): "
                  + ", ".join(f"{k} {v['first_pass_sentences_per_s']} / {v['second_pass_sentences_per_s']}"
                              for k, v in r["conv_search"].items()), ""]
    lines += ["## The service", "", "| provider | run | in flight | items/s | p50 ms | p99 ms | statuses | mean batch "
              "| worker CPU % | GPU util mean/max % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for provider, s in r["service"].items():
        for key in ("sentiment_one_per_request", "sentiment_batched_64", "pos_one_per_request", "pos_batched_64"):
            for row in s[key]:
                batches = row.get("server_batches") or {}
                gpu = row.get("gpu") or {}
                cpu = row["api_worker_cpu_percent"]
                lines.append(
                    f"| {provider} | {key} | {row['level']} | {row['items_per_s']} | {row['p50_ms']} | {row['p99_ms']} "
                    f"| {row['statuses']} | {batches.get('mean_batch')} | {min(cpu)}-{max(cpu)} x{len(cpu)} | "
                    f"{gpu.get('gpu_util_mean_percent', '-')}/{gpu.get('gpu_util_max_percent', '-')} |")
    for provider, s in r["service"].items():
        lines += ["", f"{provider}: {s['env']}, ready in {s['start_s']} s; log: {s['log_lines_runs_on']}, "
                  f"'models loaded' x{s['log_models_loaded']}, fallbacks {s['log_fell_back']}."]
        if s.get("profile_one_per_request"):
            lines += ["", f"Profile of {s['profile_one_per_request']['workers_sampled']} {provider} workers during the "
                      "first one-per-request run (py-spy, 200 Hz):", "", "| where | share |", "|---|---|",
                      *s["profile_one_per_request"]["table"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long rehearsal (small payloads, one level)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement point")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) * 3 // 4),
                        help="API workers per server (default: 3/4 of the cores; the rest send the load)")
    parser.add_argument("--clients", type=int, default=max(1, (os.cpu_count() or 2) // 4),
                        help="load-generating processes")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="gpu-" + time.strftime("%Y-%m-%d"))
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    n = 300 if args.smoke else 2000
    texts, zh = reviews(n, seed=1, smoke=args.smoke), sentences(n, seed=1, smoke=args.smoke)
    env = environment()
    cuda = runtime.CUDA in env["available_providers"] and runtime.gpu_visible()
    result: dict = {"name": args.name, "date": time.strftime("%Y-%m-%d %H:%M"), "smoke": args.smoke,
                    "command": "python -m bench.gpu " + " ".join(sys.argv[1:]), "environment": env, "cuda": cuda,
                    "workers": args.workers, "clients": args.clients}
    print(json.dumps(env), flush=True)
    started = time.time()
    out = args.out / ("smoke" if args.smoke else "")
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every phase: a run cut short still leaves what it measured
        result["elapsed_s"] = round(time.time() - started)
        (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")

    if cuda:
        result["parity"] = parity(texts[:1000], zh[:1000])
        result["conv_search"] = pos_conv_search(zh[:500])
        save()
    result["limit"] = limit(texts, zh, seconds, cuda)
    save()
    levels = {"one": [64] if args.smoke else [64, 256], "batched": [4] if args.smoke else [8, 32]}
    pool = LoadPool(args.clients)
    try:
        result["service"] = {}
        # CUDA: one model process fed by every API worker; the CPU build: its default (best measured) layout.
        cpu_layout = Settings.from_env().resolved_layout() if not cuda else "single"
        for provider, layout, max_batch in ([("cuda", "split", 256)] if cuda else []) + [("cpu", cpu_layout, 64)]:
            print(f"service on {provider}, SENPOS_LAYOUT={layout}", flush=True)
            result["service"][provider] = service(provider, layout, texts, zh, seconds, args.workers, max_batch,
                                                  pool, levels, profile_workers=min(3, args.workers))
            save()
    finally:
        pool.close()
    (out / "gpu-latest.json").write_text(json.dumps(headline(result), indent=1) + "\n")
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result), flush=True)


if __name__ == "__main__":
    main()
