"""The one report writer: a run's result as <name>.json (everything measured) and <name>.md (what it means), and
for the CPU benchmark a latency/throughput plot; one markdown renderer per kind of run (`benchmark`, `stress`,
`gpu`, `profile`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

PIPE = "\\|"  # a literal | inside a markdown table cell


def write_json(result: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def write(result: dict, out: Path, name: str, render: Callable[[dict], str],
          figure: Callable[[dict, Path], None] | None = None) -> None:
    """<name>.json, <name>.md from `render` (also printed) and, with `figure`, <name>.png, in `out`."""
    write_json(result, out, name)
    text = render(result)
    (out / f"{name}.md").write_text(text)
    if figure:
        figure(result, out / f"{name}.png")
    print(text, flush=True)


def table(header: Iterable[str], rows: Iterable[Iterable]) -> list[str]:
    """A markdown table's lines."""
    header = list(header)
    return [_row(header), "|" + "---|" * len(header), *map(_row, rows)]


def _row(cells: Iterable) -> str:
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def yes(ok: bool | None) -> str:
    return "yes" if ok else ("n/a" if ok is None else "NO")


def shares(samples: dict) -> list[str]:
    """A markdown table of each profile bucket's share of the samples, largest first."""
    counts = Counter(samples)
    total = sum(counts.values()) or 1
    return table(("where", "share"), ((name, f"{100 * n / total:.1f}%") for name, n in counts.most_common()))


# The CPU benchmark (python -m bench.run).

def _best(rows: list[dict] | None) -> float:
    return max((r["items_per_s"] for r in rows or []), default=0.0)


def _by_level(rows: list[dict] | None) -> dict[float, float]:
    return {r["level"]: r["items_per_s"] for r in rows or []}


def layout_targets(result: dict) -> list[tuple[str, str, bool | None]]:
    """split >= 0.9 x single one review per request; senpos >= 1.5 x the better peer at every level."""
    layouts = result.get("service_layouts") or {}
    if set(layouts) != {"single", "split"}:
        return []
    single, split = (_best(layouts[k]["one_per_request"]) for k in ("single", "split"))
    ours = _by_level(layouts[result["default_layout"]]["one_per_request"])
    peers = [_by_level(result.get(k)) for k in ("ray_serve", "stock_bentoml") if result.get(k)]
    worst = min(((ours[lv] / max(max(p.get(lv, 0.0) for p in peers), 1e-9), lv) for lv in ours
                 if any(lv in p for p in peers)), default=None)
    return [("split >= 0.9 x single, 1 review/request (best level)", f"{split:.0f} vs {single:.0f} "
             f"({split / single:.2f}x)", split >= 0.9 * single),
            ("senpos >= 1.5 x the better peer at every level", f"worst {worst[0]:.2f}x at {worst[1]:g} in flight"
             if worst else "no peer run", worst[0] >= 1.5 if worst else None)]


def targets(result: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met: None where it was not measured) for every target of the CPU benchmark."""
    svc = result["service"]
    one, batched = _best(svc["one_per_request"]), _best(svc["batched_64"])
    limit = result["limit"]["sentiment"]["reviews_per_s"]
    naive, ray = _best(result["naive"]), _best(result.get("ray_serve"))
    half = min(svc["open_loop"], key=lambda r: abs(r["fraction_of_saturation"] - 0.5))
    pos = max((r for r in svc["pos_tag"] if r["name"] == "batched_64"), key=lambda r: r["vs_jieba"])
    return layout_targets(result) + [
        ("one-per-request >= 0.8 x client-batched", f"{one:.0f} vs {batched:.0f} ({one / batched:.2f}x)",
         one >= 0.8 * batched),
        ("one-per-request >= 0.7 x the limit", f"{one:.0f} vs {limit:.0f} ({one / limit:.2f}x)", one >= 0.7 * limit),
        ("one-per-request >= 3 x naive", f"{one:.0f} vs {naive:.0f} ({one / max(naive, 1e-9):.1f}x)", one >= 3 * naive),
        ("one-per-request >= Ray Serve", f"{one:.0f} vs {ray:.0f}" if ray else "not run", one >= ray if ray else None),
        ("p99 at half saturation < 250 ms", f"{half['p99_ms']:.0f} ms at {half['level']:.0f} req/s",
         half["p99_ms"] < 250),
        ("/pos-tag client-batched >= 1 x jieba.posseg in one process (chars/s; goal 3x)",
         f"{pos['chars_per_s']} vs {pos['jieba_posseg_around']} ({pos['vs_jieba']}x at {pos['level']} in flight)",
         pos["vs_jieba"] >= 1),
    ]


def benchmark(result: dict) -> str:
    svc = result["service"]
    lines = [f"# Benchmark {result['name']}", "",
             f"{result['date']}, `{result['command']}`, {result['machine']['platform']}, "
             f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}. "
             f"Payloads: {result['payloads']['reviews']} IMDB reviews (mean {result['payloads']['review_chars_mean']} "
             f"chars), {result['payloads']['sentences']} PFR dev sentences (mean "
             f"{result['payloads']['sentence_chars_mean']} chars). Load generator, server and peers share the machine.",
             "", "## Targets", "", *table(("target", "measured", "met"),
                                          ((name, value, yes(ok)) for name, value, ok in targets(result)))]
    lim = result["limit"]["sentiment"]
    rows = [(f"limit: ONNX alone, length-sorted batches (one process on all cores: "
             f"{lim.get('one_process_all_cores', '-')}; one process per core: "
             f"{lim.get('one_process_per_core', '-')})", "-", lim["reviews_per_s"], *[""] * 7)]
    layouts = result.get("service_layouts") or {}
    groups = [(f"SENPOS_LAYOUT={k}, {what}/request (closed)", v[key]) for k, v in layouts.items()
              if k != result.get("default_layout") for key, what in (("one_per_request", 1), ("batched_64", 64))]
    groups += [(f"service ({result.get('default_layout', 'default')}), 1 item/request (closed)",
                svc["one_per_request"]),
               ("service, 64 items/request (closed)", svc["batched_64"]),
               ("service, 1 item/request (open loop, req/s)", svc["open_loop"]),
               ("naive PyTorch, 1 item/request", result["naive"]),
               ("Ray Serve @serve.batch, 1 item/request", result.get("ray_serve") or []),
               ("stock BentoML batchable=True, 1 item/request", result.get("stock_bentoml") or [])]
    rows += [(label, f"{r['level']:g}", r["items_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"],
              r["statuses"], (r.get("server_batches") or {}).get("mean_batch", ""), r["loadgen_cpu_percent"])
             for label, group in groups for r in group]
    lines += ["", "## /sentiment", "", *table(("run", "level", "items/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                                               "statuses", "items per model call", "loadgen CPU %"), rows)]
    pos = result["pos_in_process"]
    lines += ["", "## /pos-tag", "",
              f"In one process on {pos['chars']} characters: pipeline (jieba segmentation with the corpus dictionary "
              f"+ batched ONNX tagging) {pos['pipeline_chars_per_s']} chars/s, ONNX model alone "
              f"{pos['model_chars_per_s']} chars/s, jieba.posseg {pos['jieba_posseg_chars_per_s']} chars/s.", ""]
    for r in svc["pos_tag"]:
        lines.append(f"- service {r['name']}, {r['level']} in flight: {r['chars_per_s']} chars/s ({r['vs_jieba']}x "
                     f"jieba.posseg at {r['jieba_posseg_around']} just before / after), p50 {r['p50_ms']} ms, "
                     f"p99 {r['p99_ms']} ms, statuses {r['statuses']}")
    if result.get("profile"):
        lines += ["", "## Where the time goes (a target was missed)", "",
                  "py-spy (200 Hz) on both API workers of a fresh server while 64 requests are in flight, one item "
                  "per request (`bench/usage.py`); share of the samples in which a worker was busy.", ""]
        for path, prof in result["profile"].items():
            lines += [f"### {path}: {prof['items_per_s']} items/s during the profile", "", *shares(prof["samples"]),
                      ""]
    return "\n".join(lines) + "\n"


def latency_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = [("service 1/request (closed)", result["service"]["one_per_request"], "o-"),
              ("service 1/request (open loop)", result["service"]["open_loop"], "s--"),
              ("service 64/request", result["service"]["batched_64"], "^-"),
              ("naive PyTorch", result["naive"], "x-"), ("Ray Serve", result.get("ray_serve") or [], "d-"),
              ("stock BentoML", result.get("stock_bentoml") or [], "v-")]
    for label, rows, style in series:
        if rows:
            ax.plot([r["items_per_s"] for r in rows], [r["p99_ms"] for r in rows], style, label=label)
    ax.axvline(result["limit"]["sentiment"]["reviews_per_s"], color="grey", ls=":", label="limit (ONNX alone)")
    ax.set(xlabel="throughput (reviews/s)", ylabel="p99 latency (ms)", yscale="log",
           title=f"/sentiment on {result['machine']['cpus']} CPUs")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# Stress and faults (python -m bench.stress).

def _busy(cpu: dict) -> str:
    return f"machine {cpu['machine_busy_percent']:.0f}% busy, API workers {cpu['api_workers_percent']}% of a core"


def stress(r: dict) -> str:
    o, so, k, t, st, sat = r["overload"], r["soak"], r["kill_worker"], r["sigterm"], r["schemathesis"], r["saturation"]
    steps = "; ".join(f"{x['rate']} req/s: {x['items_per_s']}/s served, p99 {x['p99_ms']} ms, {x['statuses']}, "
                      f"{_busy(x)}, load generator {x['loadgen_cpu_percent']}%" for x in sat["tried"])
    busy = [w["machine_busy_percent"] for w in so["cpu_per_window"]] or [float("nan")]
    rows = [
        (f"schemathesis, `{st['command'].replace('|', PIPE)}`", st["summary"], yes(st["passed"])),
        (f"overload: {o['offered_per_s']} req/s (4x) for {o['seconds']:g} s",
         f"statuses {o['statuses']}; goodput {o['items_per_s']}/s; refusals p50 {o['refusal_p50_ms']} ms, p99 "
         f"{o['refusal_p99_ms']} ms from the scheduled send (p50 {o.get('refusal_after_send_p50_ms')}, p99 "
         f"{o.get('refusal_after_send_p99_ms')} ms from the actual send) ({o['server_shed_count']:g} counted by the "
         f"server's senpos_shed_requests_total; the load generator, {o['loadgen_cpu_percent']}% CPU, sent p99 "
         f"{o.get('loadgen_send_lag_p99_ms')} ms late; {_busy(o)}); {o['after_load_items_per_s_5s']}/s in the 5 s "
         "after",
         f"only 200/429/503: {yes(o['only_200_429_503'])}; back to full throughput in 5 s: "
         f"{yes(o['recovered_within_5s'])}; refusals fast (p99 < 1 s): {yes((o['refusal_p99_ms'] or 0) < 1000)} "
         f"from the schedule, {yes((o.get('refusal_after_send_p99_ms') or 0) < 1000)} from the send"),
        (f"soak: {so['rate_per_s']} req/s (70%) for {so['duration_s']} s",
         f"{so['statuses']}; RSS {so['rss_mb'][0]} -> {so['rss_mb'][-1]} MB ({100 * so['rss_growth']:.1f}%); p99 "
         f"per window {so['p99_ms_per_window']} ms; machine {min(busy):.0f}-{max(busy):.0f}% busy per window",
         f"zero errors: {yes(so['errors'] == 0)}; memory growth < 10%: {yes(so['rss_growth'] < 0.1)}; latency "
         f"stable (no window's p99 over twice the median's): {yes(so['latency_stable'])}"),
        ("SIGKILL of a worker under load (16 in flight)",
         f"{k['statuses']}, {k['failed_requests']} failed; serving again {k['recovered_s_after_load']} s after the "
         "load", f"recovered on its own: {yes(k['recovered'])}"),
        ("SIGTERM under load (16 in flight)", f"{t['statuses']}; exit code {t['server_exit_code']}",
         f"no 5xx: {yes(t['5xx'] == 0)}; afterwards: {t['after_shutdown']}"),
    ]
    return "\n".join([
        f"# Stress and faults, {r['date']}", "", f"`{r['command']}`, {r['cpus']} CPUs, loopback only. "
        f"Saturation, the highest open-loop rate served in full over {sat['window_s']:g} s (one review per request; "
        f"every answer 200, goodput >= 97%, p99 <= {sat['p99_budget_ms']:g} ms): {sat['rate']} req/s, searched down "
        f"from the closed-loop peak at 64 in flight, {sat['closed_loop_peak']} reviews/s. Steps: {steps}.", "",
        *table(("run", "result", "requirement met"), rows), ""])


# The GPU proof (python -m bench.gpu).

def gpu(r: dict) -> str:
    env = r["environment"]
    lines = [f"# GPU proof: {env['gpu'] or 'no GPU'}, {r['date']}", "",
             f"`{r['command']}`, {env['cpus']} CPUs, onnxruntime {env['onnxruntime']} "
             f"({', '.join(env['available_providers'])}).", ""]
    if r.get("parity"):
        lines += ["## Parity: CUDA against CPU, same inputs, same batches", "", *table(
            ("CUDA settings", "sentiment max abs diff", "same label", "POS max abs diff", "same tag", "within 1e-4"),
            ((name, f"{p['sentiment_max_abs_diff']:.2e}", f"{p['sentiment_same_label']}/{p['reviews']}",
              f"{p['pos_max_abs_diff']:.2e}", f"{p['pos_same_tag']}/{p['words']}", p["within_1e-4"])
             for name, p in r["parity"].items())), ""]
    lim = r["limit"]
    rows = [("CPU, best of one process / one per core", lim["cpu"]["sentiment"]["reviews_per_s"],
             lim["cpu"]["pos"]["model_chars_per_s"], lim["cpu"]["pos"]["pipeline_chars_per_s"])]
    for batch in (64, 256) if "cuda" in lim else ():
        pos = lim["cuda"]["pos"][f"batch_{batch}"]
        rows.append((f"CUDA, one process, batch {batch}", lim["cuda"]["sentiment"][f"batch_{batch}_reviews_per_s"],
                     pos["model_chars_per_s"], pos["pipeline_chars_per_s"]))
    lines += ["## The limit: each model alone (no HTTP)", "", *table(
        ("provider", "sentiment reviews/s", "POS model chars/s", "POS pipeline chars/s (one process)"), rows)]
    lines += ["", f"Tokenisation alone (spaCy): {lim['cpu']['sentiment']['tokenise_reviews_per_s_one_core']} reviews/s "
              f"on one core; jieba.posseg {lim['cpu']['pos']['jieba_posseg_chars_per_s']} chars/s.", ""]
    if r.get("conv_search"):
        lines += ["cuDNN convolution search for the tagger (sentences/s, first pass / second): "
                  + ", ".join(f"{k} {v['first_pass_sentences_per_s']} / {v['second_pass_sentences_per_s']}"
                              for k, v in r["conv_search"].items()), ""]
    rows = []
    for provider, s in r["service"].items():
        for key in ("sentiment_one_per_request", "sentiment_batched_64", "pos_one_per_request", "pos_batched_64"):
            for row in s[key]:
                gpu_use, cpu = row.get("gpu") or {}, row["api_worker_cpu_percent"]
                rows.append((provider, key, row["level"], row["items_per_s"], row["p50_ms"], row["p99_ms"],
                             row["statuses"], (row.get("server_batches") or {}).get("mean_batch"),
                             f"{min(cpu)}-{max(cpu)} x{len(cpu)}",
                             f"{gpu_use.get('gpu_util_mean_percent', '-')}/{gpu_use.get('gpu_util_max_percent', '-')}"))
    lines += ["## The service", "", *table(("provider", "run", "in flight", "items/s", "p50 ms", "p99 ms", "statuses",
                                            "mean batch", "worker CPU %", "GPU util mean/max %"), rows)]
    for provider, s in r["service"].items():
        lines += ["", f"{provider}: {s['env']}, ready in {s['start_s']} s; log: {s['log_lines_runs_on']}, "
                  f"'models loaded' x{s['log_models_loaded']}, fallbacks {s['log_fell_back']}."]
        if prof := s.get("profile_one_per_request"):
            lines += ["", f"Profile of {prof['workers_sampled']} {provider} workers during the first one-per-request "
                      "run (py-spy, 200 Hz):", "", *shares(prof["samples"])]
    return "\n".join(lines) + "\n"


# Where the time goes (python -m bench.profile).

def profile(r: dict) -> str:
    load_s = next(iter(r["runs"].values()))["load_s"]
    lines = [f"# Profile of the server under load, {r['date']}", "",
             f"`{r['command']}`: py-spy (200 Hz) on both worker processes while 64 requests are in flight, "
             f"one item per request, {load_s:g} s; share of the samples in which a worker was busy.", ""]
    for title, run in r["runs"].items():
        lines += [f"## {title}: {run['items_per_s']} items/s during the profile", "", *shares(run["samples"]), ""]
    return "\n".join(lines) + "\n"
