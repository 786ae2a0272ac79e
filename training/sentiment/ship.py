"""The shipped sentiment model's recipe, end to end: `python -m training.sentiment ship`.

prepare -> wide -> baseline -> round 0, a teacher trained on labelled data (BiLSTM, then stacked with the wide
branch) -> for each round k: the previous round's stack scores the unlabelled reviews and a new BiLSTM learns from
them too, stacked in turn -> export -> report, each step callable alone too (the CLI's other commands and the
modules' own). A step whose output is already in `runs/` is skipped, so an interrupted run resumes at the step it
was in; the wall-clock time of each step goes to `runs/sentiment/ship.json`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from senpos.data_root import data_root
from training.common import Step, run_steps

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "sentiment"

# The shipped model's settings, in one place: each dict is one step's config (its CLI flags).
RECIPE = {
    "prepare": {"split_from": str(MODEL_DIR / "split.json"), "vocab_unsup": True, "max_vocab": 50000,
                "min_freq": 5, "w2v_epochs": 5},
    "wide": {"n": 2},
    # The teacher: the BiLSTM on the fit reviews, a sentence crop of each and the short-text training part.
    "teacher": {"hidden": 128, "layers": 1, "pooling": "concat", "max_tokens": 400, "head_tokens": 100,
                "lr": 0.002, "epochs": 4, "patience": 1, "crops": 1, "short_texts": "train", "short_repeat": 2,
                "threads": 1},
    # Each student: the same, plus 20,000 of the unlabelled reviews each epoch with the previous stack's scores,
    # and adversarial training on the embeddings (each batch also learns from itself moved one word vector's
    # length uphill).
    "student": {"hidden": 128, "layers": 1, "pooling": "concat", "max_tokens": 400, "head_tokens": 100,
                "lr": 0.002, "epochs": 5, "patience": 1, "crops": 1, "short_texts": "train", "short_repeat": 2,
                "unsup_per_epoch": 20000, "adversarial": 1.0, "threads": 1},
    "rounds": 2,  # of self-training: round 0 (the teacher) -> round 1 -> round 2, the shipped one
    "combine": {"short_texts": "eval"},
}


def ship(runs: Path = Path("runs/sentiment"), out: Path = MODEL_DIR, data: Path | None = None,
         recipe: dict = RECIPE, report_seconds: float = 10.0) -> dict:
    """Run the recipe's steps that have not run yet in `runs`; export to `out`. Returns each step's seconds."""
    from training.sentiment.baseline import run as baseline
    from training.sentiment.combine import combine
    from training.sentiment.export import export
    from training.sentiment.prepare import PrepareConfig, prepare
    from training.sentiment.pseudo_label import pseudo_label
    from training.sentiment.report import report
    from training.sentiment.train import TrainConfig, train
    from training.sentiment.wide import WideConfig, fit_wide

    data = data or data_root() / "imdb"
    prepared, wide, unsup = runs / "prepared", runs / "wide", data / "unsup.jsonl.gz"
    tcfg = TrainConfig(**{**recipe["teacher"], "device": "auto"})
    scfg = TrainConfig(**{**recipe["student"], "device": "auto"})
    steps: list[Step] = [
        ("prepare", prepared / "data.npz", lambda: prepare(PrepareConfig(
            train=str(data / "train.jsonl.gz"), unsup=str(unsup), **recipe["prepare"]), prepared)),
        ("wide", wide / "wide.npz", lambda: fit_wide(prepared, wide, WideConfig(
            max_tokens=tcfg.max_tokens, head_tokens=tcfg.head_tokens, **recipe["wide"]))),
        ("baseline", prepared / "baseline.json", lambda: (prepared / "baseline.json").write_text(
            json.dumps(baseline(prepared), indent=2))),
    ]

    def stacked(k: int, cfg: TrainConfig) -> None:
        """Round k: its BiLSTM, then its stack with the wide branch."""
        deep, stack = runs / f"round{k}", runs / f"round{k}_stack"
        steps.append((f"round{k}", deep / "metrics.json", lambda: train(prepared, deep, cfg)))
        steps.append((f"round{k}_stack", stack / "metrics.json",
                      lambda: combine(deep, wide, prepared, stack, **recipe["combine"])))

    stacked(0, tcfg)  # the first teacher learns from the labelled data only
    for k in range(1, recipe["rounds"] + 1):  # each student learns from the previous round's stack too
        teacher, labels = runs / f"round{k - 1}_model", f"unsup_round{k}.npz"
        steps.append((f"round{k - 1}_export", teacher / "model.onnx",
                      lambda s=runs / f"round{k - 1}_stack", t=teacher: export(s, prepared, t)))
        steps.append((f"pseudo_label{k}", prepared / labels,
                      lambda t=teacher, n=labels: pseudo_label(t, prepared, str(unsup), n)))
        stacked(k, replace(scfg, pseudo_labels=labels))
    final = runs / f"round{recipe['rounds']}_stack"
    steps += [("export", None, lambda: export(final, prepared, out)),
              ("report", None, lambda: report(out, report_seconds))]
    return run_steps(steps, runs)
