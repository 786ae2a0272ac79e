"""The shipped tagger's recipe, end to end: `python -m training.pos ship`.

prepare -> tagger (2x256 BiLSTM with the lexicon features) -> its fine-tune at a lower learning rate -> export
(the served int8 form) -> the segmentation corrector -> its fine-tune -> export it into the same directory ->
evaluate on dev against jieba. Each step is callable alone too (the CLI's other commands). A step whose output
is already in `runs/` is skipped, so an interrupted run resumes at the step it was in; the wall-clock time of
each step goes to `runs/pos/ship.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from senpos.data_root import data_root
from training.common import Step, run_steps

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "pos"

# The shipped model's settings, in one place: each dict is one step's config (its CLI flags).
RECIPE: dict = {
    "prepare": {"min_word_freq": 1},
    "tagger": {"hidden": 256, "layers": 2, "epochs": 30, "patience": 3},
    "tagger_finetune": {"hidden": 256, "layers": 2, "epochs": 3, "patience": 2, "lr": 0.0005},
    "segmenter": {"epochs": 6, "threads": 2},
    "segmenter_finetune": {"epochs": 1, "threads": 2, "lr": 0.0005},
    "min_bigram_count": 3,  # the corrector's bigram table keeps bigrams seen this often, in int8
}


def ship(runs: Path = Path("runs/pos"), out: Path = MODEL_DIR, data: Path | None = None,
         recipe: dict = RECIPE) -> dict:
    """Run the recipe's steps that have not run yet in `runs`; export to `out`. Returns each step's seconds."""
    from training.pos.evaluate import evaluate_file
    from training.pos.export import export
    from training.pos.prepare import PrepareConfig, prepare
    from training.pos.segmenter import SegmenterConfig, export_segmenter, train_segmenter
    from training.pos.train import TrainConfig, train

    data = data or data_root() / "zh_pos" / "pfr1998_01"
    splits = {"train": str(data / "train.jsonl.gz"), "dev": str(data / "dev.jsonl.gz")}
    prepared, tagger, tuned = runs / "prepared", runs / "tagger", runs / "tagger_finetune"
    seg, seg_tuned = runs / "segmenter", runs / "segmenter_finetune"

    def evaluate() -> None:
        result = evaluate_file(splits["dev"], out, baseline=True)
        (out / "evaluation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))

    steps: list[Step] = [
        ("prepare", prepared / "prepare.json",
         lambda: prepare(PrepareConfig(**splits, **recipe["prepare"]), prepared)),
        ("tagger", tagger / "metrics.json", lambda: train(prepared, tagger, TrainConfig(**recipe["tagger"]))),
        ("tagger_finetune", tuned / "metrics.json", lambda: train(prepared, tuned, TrainConfig(
            **recipe["tagger_finetune"], init_from=str(tagger / "checkpoint.pt")))),
        ("export", None, lambda: export(tuned, prepared, out)),
        ("segmenter", seg / "segmenter_metrics.json",
         lambda: train_segmenter(SegmenterConfig(**splits, **recipe["segmenter"]), seg)),
        ("segmenter_finetune", seg_tuned / "segmenter_metrics.json", lambda: train_segmenter(SegmenterConfig(
            **splits, **recipe["segmenter_finetune"], init_from=str(seg / "segmenter.pt")), seg_tuned)),
        ("export_segmenter", None, lambda: export_segmenter(seg_tuned, out, recipe["min_bigram_count"])),
        ("evaluate", None, evaluate),
    ]
    return run_steps(steps, runs)
