"""Write a benchmark result as JSON, a markdown summary (with the targets) and a latency/throughput plot."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.profile import shares


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
    svc = result["service"]
    one, batched = _best(svc["one_per_request"]), _best(svc["batched_64"])
    limit = result["limit"]["sentiment"]["reviews_per_s"]
    naive, ray = _best(result["naive"]), _best(result.get("ray_serve"))
    half = min(svc["open_loop"], key=lambda r: abs(r["fraction_of_saturation"] - 0.5))
    pos = result["pos_in_process"]
    rows = layout_targets(result) + [
        ("one-per-request >= 0.8 x client-batched", f"{one:.0f} vs {batched:.0f} ({one / batched:.2f}x)",
         one >= 0.8 * batched),
        ("one-per-request >= 0.7 x the limit", f"{one:.0f} vs {limit:.0f} ({one / limit:.2f}x)", one >= 0.7 * limit),
        ("one-per-request >= 3 x naive", f"{one:.0f} vs {naive:.0f} ({one / max(naive, 1e-9):.1f}x)", one >= 3 * naive),
        ("one-per-request >= Ray Serve", f"{one:.0f} vs {ray:.0f}" if ray else "not run", one >= ray if ray else None),
        ("p99 at half saturation < 250 ms", f"{half['p99_ms']:.0f} ms at {half['level']:.0f} req/s",
         half["p99_ms"] < 250),
        ("/pos-tag pipeline >= 3 x jieba.posseg (chars/s)",
         f"{pos['pipeline_chars_per_s']} vs {pos['jieba_posseg_chars_per_s']} ({pos['pipeline_vs_jieba']}x)",
         pos["pipeline_vs_jieba"] >= 3),
    ]
    return rows


def markdown(result: dict) -> str:
    svc = result["service"]
    lines = [f"# Benchmark {result['name']}", "",
             f"{result['date']}, `{result['command']}`, {result['machine']['platform']}, "
             f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}. "
             f"Payloads: {result['payloads']['reviews']} IMDB reviews (mean {result['payloads']['review_chars_mean']} "
             f"chars), {result['payloads']['sentences']} PFR dev sentences (mean "
             f"{result['payloads']['sentence_chars_mean']} chars). Load generator, server and peers share the machine.",
             "", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, value, ok in targets(result):
        lines.append(f"| {name} | {value} | {'yes' if ok else ('n/a' if ok is None else 'NO')} |")
    lines += ["", "## /sentiment", "", "| run | level | items/s | p50 ms | p95 ms | p99 ms | max ms | statuses | "
              "items per model call | loadgen CPU % |", "|---|---|---|---|---|---|---|---|---|---|"]
    lim = result["limit"]["sentiment"]
    lines.append(f"| limit: ONNX alone, length-sorted batches (one process on all cores: "
                 f"{lim.get('one_process_all_cores', '-')}; one process per core: "
                 f"{lim.get('one_process_per_core', '-')}) | - | {lim['reviews_per_s']} | | | | | | | |")
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
    for label, rows in groups:
        for r in rows:
            batch = (r.get("server_batches") or {}).get("mean_batch", "")
            lines.append(f"| {label} | {r['level']:g} | {r['items_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
                         f"{r['p99_ms']} | {r['max_ms']} | {r['statuses']} | {batch} | {r['loadgen_cpu_percent']} |")
    pos = result["pos_in_process"]
    lines += ["", "## /pos-tag", "",
              f"In one process on {pos['chars']} characters: pipeline (jieba segmentation with the corpus dictionary "
              f"+ batched ONNX tagging) {pos['pipeline_chars_per_s']} chars/s, ONNX model alone "
              f"{pos['model_chars_per_s']} chars/s, jieba.posseg {pos['jieba_posseg_chars_per_s']} chars/s.", ""]
    for key in ("pos_one_per_request", "pos_batched_64"):
        for r in svc[key]:
            lines.append(f"- service {key}: {r['chars_per_s']} chars/s ({r['items_per_s']} sentences/s), "
                         f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, statuses {r['statuses']}")
    if result.get("profile"):
        lines += ["", "## Where the time goes (a target was missed)", "",
                  "py-spy (200 Hz) on both API workers of a fresh server while 64 requests are in flight, one item "
                  "per request (`bench/profile.py`); share of the samples in which a worker was busy.", ""]
        for path, prof in result["profile"].items():
            lines += [f"### {path}: {prof['items_per_s']} items/s during the profile", "", "| where | share |",
                      "|---|---|", *shares(Counter(prof["samples"])), ""]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
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


def write_report(result: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{name}.md").write_text(markdown(result))
    plot(result, out / f"{name}.png")
    print(markdown(result))
