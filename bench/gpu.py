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
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import report
from bench.harness import REPO, api_workers, server_log, server_process
from bench.loadgen import LoadPool
from bench.measure import POS, SENTIMENT, limit_sentiment, model_alone, pos_in_process, sweep
from bench.payloads import reviews, sentences
from bench.usage import measured, record
from senpos import runtime
from service.settings import Settings


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
    model, so the plans match). The CPU runs the float32 tagger here, as the GPU does (on CPU the service runs the
    int8 one)."""
    from senpos.pos import PosTagger
    from senpos.sentiment import SentimentPredictor

    cpu_s, cpu_p = SentimentPredictor(SENTIMENT, provider="cpu"), PosTagger(POS, provider="cpu", precision="float")
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
            rate, tokenise = model_alone(texts, seconds, threads=1, provider="cuda", max_batch=batch)
            out["cuda"]["sentiment"][f"batch_{batch}_reviews_per_s"] = round(rate, 1)
            out["cuda"]["pos"][f"batch_{batch}"] = pos_in_process(zh, provider="cuda", max_batch=batch)
        out["cuda"]["sentiment"]["tokenise_reviews_per_s_one_core"] = round(tokenise, 1)
    print(f"  limit: {json.dumps(out)}", flush=True)
    return out


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
            out["profile_one_per_request"] = {"workers_sampled": profile_workers, "samples": dict(counts)}
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
        log = server_log(base).read_text(errors="replace")
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

    def save() -> None:  # after every phase: a run cut short still leaves what it measured
        result["elapsed_s"] = round(time.time() - started)
        report.write_json(result, out, args.name)

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
    report.write_json(headline(result), out, "gpu-latest")
    report.write(result, out, args.name, report.gpu)


if __name__ == "__main__":
    main()
