"""Architecture sweep: train each config of a task in parallel, pick by validation accuracy and CPU cost.

    python -m training.sweep sentiment --prepared runs/sentiment/prepared --out runs/sentiment/sweep
    python -m training.sweep pos --prepared runs/pos/prepared --out runs/pos/sweep

The selection rule: the cheapest config (CPU inference multiply-adds per review, or per word) whose
validation accuracy is within `--tolerance` of the best one. Configs are plain data below.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SENTIMENT_BASE = {"epochs": 12, "patience": 2, "seed": 13}
SENTIMENT = {
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


POS_BASE = {"epochs": 30, "patience": 3, "seed": 13}
POS = {
    "h200_l1": {"hidden": 200, "layers": 1},
    "h300_l1": {"hidden": 300, "layers": 1},
    "h200_l2": {"hidden": 200, "layers": 2},
    "h200_l1_drop0.5": {"hidden": 200, "layers": 1, "dropout": 0.5},
    "h200_l1_nowordrop": {"hidden": 200, "layers": 1, "word_dropout": 0.0},
    "h200_l2_char150": {"hidden": 200, "layers": 2, "char_filters": 150},
    "h128_l1_char50": {"hidden": 128, "layers": 1, "char_dim": 32, "char_filters": 50},
    "h256_l2_drop0.5": {"hidden": 256, "layers": 2, "dropout": 0.5},
    # With the jieba lexicon feature (prepared with --min-word-freq 1), batches built in worker processes:
    "lex_h200_l2": {"hidden": 200, "layers": 2, "loader_workers": 6},
    "lex_h256_l2": {"hidden": 256, "layers": 2, "loader_workers": 6},
}


def lstm_macs(inp: int, hidden: int, layers: int) -> int:
    """Multiply-adds per time step of the BiLSTM stack (dominates CPU inference)."""
    total = 0
    for _ in range(layers):
        total += 2 * 4 * (inp + hidden) * hidden  # two directions, four gates
        inp = 2 * hidden
    return total


def sentiment_cost(cfg: dict) -> int:
    """Per review at the truncation cap."""
    return lstm_macs(100, cfg["hidden"], cfg["layers"]) * cfg["max_tokens"]


def pos_cost(cfg: dict) -> int:
    """Per word: the BiLSTM plus the character CNN over an average of two characters."""
    cnn = 2 * cfg.get("char_width", 3) * cfg.get("char_dim", 50) * cfg.get("char_filters", 100)
    return lstm_macs(100 + cfg.get("char_filters", 100), cfg["hidden"], cfg["layers"]) + cnn


TASKS = {"sentiment": (SENTIMENT_BASE, SENTIMENT, sentiment_cost, "val_accuracy"),
         "pos": (POS_BASE, POS, pos_cost, "dev_token_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", help="names of configs to run (default: all)")
    parser.add_argument("--tolerance", type=float, default=0.003)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training process")
    parser.add_argument("--time-budget-s", type=float, default=0, help="per config: no new epoch after this")
    args = parser.parse_args()

    base, configs, cost, metric = TASKS[args.task]
    names = args.only or list(configs)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    procs = {}
    for name in names:
        run = args.out / name
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", f"training.{args.task}", "train", "--prepared", str(args.prepared),
               "--run", str(run)]
        for key, value in {**base, "time_budget_s": args.time_budget_s, **configs[name]}.items():
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
        results.append({"name": name, "accuracy": m[metric], "best_epoch": m["best_epoch"],
                        "parameters": m["parameters"], "macs": cost(m["config"]),
                        "epoch_seconds": [h["seconds"] for h in m["history"]], "config": configs[name]})
    ok = [r for r in results if "error" not in r]
    best = max(r["accuracy"] for r in ok)
    chosen = min((r for r in ok if r["accuracy"] >= best - args.tolerance), key=lambda r: r["macs"])
    summary = {"task": args.task, "metric": metric, "tolerance": args.tolerance, "best": best,
               "chosen": chosen["name"], "results": results}
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=2))
    for r in sorted(ok, key=lambda r: -r["accuracy"]):
        print(f"{r['name']:36s} {metric} {r['accuracy']:.4f}  MMAC {r['macs'] / 1e6:8.2f}")
    print("chosen:", chosen["name"])


if __name__ == "__main__":
    main()
