"""The shipped sentiment model's recipe, end to end: `python -m training.sentiment ship`.

prepare -> wide -> baseline -> a teacher (train, combine, export) -> pseudo-label the unlabelled reviews ->
the student (train, combine) -> export -> report, each step callable alone too (the CLI's other commands and the
modules' own). A step whose output is already in `runs/` is skipped, so an interrupted run resumes at the step it
was in; the wall-clock time of each step goes to `runs/sentiment/ship.json`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from senpos.data_root import data_root

log = logging.getLogger(__name__)

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
    # The student: the same, plus 20,000 of the unlabelled reviews each epoch with the teacher's stack's scores.
    "student": {"hidden": 128, "layers": 1, "pooling": "concat", "max_tokens": 400, "head_tokens": 100,
                "lr": 0.002, "epochs": 4, "patience": 1, "crops": 1, "short_texts": "train", "short_repeat": 2,
                "unsup_per_epoch": 20000, "threads": 1},
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
    prepared, wide, deep, stack = runs / "prepared", runs / "wide", runs / "run", runs / "wide_deep"
    teacher, teacher_stack, teacher_model = runs / "teacher", runs / "teacher_stack", runs / "teacher_model"
    tcfg = TrainConfig(**{**recipe["teacher"], "device": "auto"})
    scfg = TrainConfig(**{**recipe["student"], "device": "auto"})
    unsup = data / "unsup.jsonl.gz"
    steps = [
        ("prepare", prepared / "data.npz", lambda: prepare(PrepareConfig(
            train=str(data / "train.jsonl.gz"), unsup=str(unsup), **recipe["prepare"]), prepared)),
        ("wide", wide / "wide.npz", lambda: fit_wide(prepared, wide, WideConfig(
            max_tokens=tcfg.max_tokens, head_tokens=tcfg.head_tokens, **recipe["wide"]))),
        ("baseline", prepared / "baseline.json", lambda: (prepared / "baseline.json").write_text(
            json.dumps(baseline(prepared), indent=2))),
        ("teacher", teacher / "metrics.json", lambda: train(prepared, teacher, tcfg)),
        ("teacher_stack", teacher_stack / "metrics.json", lambda: combine(teacher, wide, prepared, teacher_stack,
                                                                          **recipe["combine"])),
        ("teacher_export", teacher_model / "model.onnx", lambda: export(teacher_stack, prepared, teacher_model)),
        ("pseudo_label", prepared / "unsup.npz", lambda: pseudo_label(teacher_model, prepared, str(unsup))),
        ("train", deep / "metrics.json", lambda: train(prepared, deep, scfg)),
        ("combine", stack / "metrics.json", lambda: combine(deep, wide, prepared, stack, **recipe["combine"])),
        ("export", None, lambda: export(stack, prepared, out)),
        ("report", None, lambda: report(out, report_seconds)),
    ]
    timings_file = runs / "ship.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    for name, done, step in steps:
        if done is not None and done.exists():
            log.info("ship: %s already done (%s)", name, done)
            continue
        t0 = time.time()
        log.info("ship: %s", name)
        step()
        timings[name] = round(time.time() - t0, 1)
        runs.mkdir(parents=True, exist_ok=True)
        timings_file.write_text(json.dumps(timings, indent=2))
    return timings
