"""Architecture/truncation sweep: train each config in parallel, pick by validation accuracy and CPU cost.

    python -m training.sentiment.sweep --prepared runs/sentiment/prepared --out runs/sentiment/sweep

The selection rule: the cheapest config (CPU inference FLOPs per review) whose validation accuracy is
within `--tolerance` of the best one. Configs are plain data below.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BASE = {"epochs": 12, "patience": 2, "seed": 13}
CONFIGS = {
    # The original tutorial's shape: 2 layers x 256, final states, head-only truncation.
    "tutorial_2x256_last_head400": {"layers": 2, "hidden": 256, "pooling": "last", "max_tokens": 400,
                                    "head_tokens": 400},
    "1x128_concat_head400": {"layers": 1, "hidden": 128, "max_tokens": 400, "head_tokens": 400},
    "1x128_concat_headtail400": {"layers": 1, "hidden": 128, "max_tokens": 400, "head_tokens": 100},
    "1x128_concat_headtail800": {"layers": 1, "hidden": 128, "max_tokens": 800, "head_tokens": 200},
    "1x128_concat_headtail256": {"layers": 1, "hidden": 128, "max_tokens": 256, "head_tokens": 64},
    "1x64_concat_headtail400": {"layers": 1, "hidden": 64, "max_tokens": 400, "head_tokens": 100},
    "1x256_concat_headtail400": {"layers": 1, "hidden": 256, "max_tokens": 400, "head_tokens": 100},
    "2x128_concat_headtail400": {"layers": 2, "hidden": 128, "max_tokens": 400, "head_tokens": 100},
    "1x128_last_headtail400": {"layers": 1, "hidden": 128, "pooling": "last", "max_tokens": 400, "head_tokens": 100},
    "1x128_concat_headtail400_lr2e-3": {"layers": 1, "hidden": 128, "max_tokens": 400, "head_tokens": 100, "lr": 2e-3},
}


def flops_per_review(cfg: dict, embed_dim: int = 100) -> int:
    """Multiply-adds of the LSTM stack for a review at the truncation cap (dominates CPU inference)."""
    hidden, total, inp = cfg["hidden"], 0, embed_dim
    for _ in range(cfg["layers"]):
        total += 2 * 4 * (inp + hidden) * hidden  # two directions, four gates
        inp = 2 * hidden
    return total * cfg["max_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    parser.add_argument("--out", type=Path, default=Path("runs/sentiment/sweep"))
    parser.add_argument("--only", nargs="*", help="names of configs to run (default: all)")
    parser.add_argument("--tolerance", type=float, default=0.003)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training process")
    parser.add_argument("--time-budget-s", type=float, default=0, help="per config: no new epoch after this")
    args = parser.parse_args()

    names = args.only or list(CONFIGS)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    procs = {}
    for name in names:
        run = args.out / name
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "training.sentiment", "train", "--prepared", str(args.prepared), "--run", str(run)]
        for key, value in {**BASE, "time_budget_s": args.time_budget_s, **CONFIGS[name]}.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
        with open(run / "log.txt", "w") as log:  # the child keeps its own copy of the descriptor
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    results = []
    for name, proc in procs.items():
        rc = proc.wait()
        metrics_path = args.out / name / "metrics.json"
        if rc != 0 or not metrics_path.exists():
            results.append({"name": name, "error": f"exit {rc}, see {args.out / name / 'log.txt'}"})
            continue
        m = json.loads(metrics_path.read_text())
        cfg = {**m["config"]}
        results.append({"name": name, "val_accuracy": m["val_accuracy"], "best_epoch": m["best_epoch"],
                        "parameters": m["parameters"], "flops_per_review": flops_per_review(cfg),
                        "epoch_seconds": [h["seconds"] for h in m["history"]], "config": CONFIGS[name]})
    ok = [r for r in results if "error" not in r]
    best = max(r["val_accuracy"] for r in ok)
    chosen = min((r for r in ok if r["val_accuracy"] >= best - args.tolerance), key=lambda r: r["flops_per_review"])
    summary = {"tolerance": args.tolerance, "best_val_accuracy": best, "chosen": chosen["name"], "results": results}
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=2))
    for r in sorted(ok, key=lambda r: -r["val_accuracy"]):
        print(f"{r['name']:36s} val_acc {r['val_accuracy']:.4f}  MFLOP/review {r['flops_per_review'] / 1e6:8.1f}")
    print("chosen:", chosen["name"])


if __name__ == "__main__":
    main()
