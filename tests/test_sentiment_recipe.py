"""Short inputs (sentence crops, the short-text set), the length-aware stack, and `ship`, the whole recipe."""

import gzip
import json
import random
import shutil

import numpy as np
import pytest
import torch

from training.sentiment.model import ModelConfig, SentimentBiLSTM, WideAndDeep, WideNgrams
from training.sentiment.short_inputs import (
    SHORT_EVAL,
    assign_parts,
    load_short_texts,
    random_crop,
    sentences,
)

END = 9  # a sentence-end token id in these tests


def test_sentences_end_after_each_end_token_and_keep_a_trailing_piece():
    ids = np.array([2, 3, END, 4, END, 5, 6])
    assert sentences(ids, np.array([END])) == [(0, 3), (3, 5), (5, 7)]
    assert sentences(np.array([2, 3]), np.array([END])) == [(0, 2)]


def test_random_crops_are_whole_consecutive_sentences_within_the_limits():
    rng = random.Random(0)
    review = np.array([2, 3, END, 4, 5, 6, END, 7, END, 8, 8, 8, END])
    spans = {tuple(review[a:b]) for a, b in sentences(review, np.array([END]))}
    for _ in range(200):
        crop = random_crop(review, np.array([END]), rng, max_sentences=2, max_tokens=64)
        pieces = [tuple(p) for p in np.split(crop, np.flatnonzero(crop == END)[:-1] + 1)]
        assert 1 <= len(pieces) <= 2 and all(p in spans for p in pieces), crop
    assert len(random_crop(np.arange(2, 500), np.array([END]), rng, max_tokens=64)) == 64


def test_the_short_text_set_is_split_once_into_balanced_select_and_report_parts():
    rows = load_short_texts("eval")
    assert len(rows) >= 300 and {r["part"] for r in rows} == {"select", "report"}
    for part in ("select", "report"):
        labels = [r["label"] for r in rows if r["part"] == part]
        assert len(labels) >= 150 and abs(np.mean(labels) - 0.5) < 0.05
    for name in ("train", "train_next"):
        texts = {r["text"].lower() for r in load_short_texts(name)}
        assert not texts & {r["text"].lower() for r in rows}, f"a text of {name}.jsonl is in the evaluation set"
    again = assign_parts([{k: v for k, v in r.items() if k != "part"} for r in rows])
    assert [r["part"] for r in again] == [r["part"] for r in rows], "parts are not what assign_parts gives"


def test_length_terms_change_short_inputs_only_as_fitted():
    torch.manual_seed(0)
    model = WideAndDeep(SentimentBiLSTM(ModelConfig(vocab_size=30, embed_dim=4, hidden=3)), WideNgrams(30, 16)).eval()
    ids, lengths = torch.randint(2, 30, (3, 400)), torch.tensor([1, 16, 400])
    with torch.no_grad():
        plain = model.logits(ids, lengths)
        model.combine[5] = 2.0  # c' s: +0.5 at length 16, +0.1 at length 400; length 1 counts as 8
        shifted = model.logits(ids, lengths)
    assert torch.allclose(shifted - plain, torch.tensor([2 / 8**0.5, 0.5, 0.1]), atol=1e-6)


def test_a_stack_saved_before_the_length_terms_still_loads():
    model = WideAndDeep(SentimentBiLSTM(ModelConfig(vocab_size=30, embed_dim=4, hidden=3)), WideNgrams(30, 16))
    state = model.state_dict()
    state["combine"] = torch.tensor([0.7, 0.5, -0.1])
    model.load_state_dict(state)
    assert model.combine.tolist() == pytest.approx([0.7, 0.5, -0.1, 0.0, 0.0, 0.0])


@pytest.mark.skipif(not SHORT_EVAL.exists(), reason="the short-text set is part of the repository")
def test_ship_runs_the_whole_recipe_and_resumes(tmp_path, reviews_jsonl):
    """prepare -> wide -> baseline -> teacher -> pseudo-labels -> student (crops, short texts, unlabelled reviews)
    -> combine -> export -> report on the 24-review fixture; a second call finds every step done and only exports
    and reports again."""
    from senpos.sentiment import SentimentPredictor
    from training.sentiment.ship import ship

    data = tmp_path / "imdb"
    data.mkdir()
    for name in ("train", "unsup"):
        with gzip.open(data / f"{name}.jsonl.gz", "wb") as f, open(reviews_jsonl, "rb") as src:
            shutil.copyfileobj(src, f)
    recipe = {
        "prepare": {"min_freq": 1, "embed_dim": 16, "w2v_epochs": 1, "val_fraction": 0.25, "report_fraction": 0.25},
        "wide": {"n": 2, "buckets": 256, "c_grid": (1.0,)},
        "teacher": {"hidden": 8, "epochs": 1, "batch_size": 8, "max_tokens": 12, "head_tokens": 4, "crops": 1,
                    "short_texts": "train", "short_repeat": 1},
        "student": {"hidden": 8, "epochs": 1, "batch_size": 8, "max_tokens": 12, "head_tokens": 4, "crops": 1,
                    "short_texts": "train", "short_repeat": 1, "unsup_per_epoch": 10},
        "rounds": 1,
        "combine": {"short_texts": "eval"},
    }
    runs, out = tmp_path / "runs", tmp_path / "model"
    first = ship(runs, out, data, recipe, report_seconds=0.1)
    assert list(first) == ["prepare", "wide", "baseline", "round0", "round0_stack", "round0_export",
                           "pseudo_label1", "round1", "round1_stack", "export", "report"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert {"validation", "report", "short_texts", "probes"} <= set(evaluation)
    assert evaluation["short_texts"]["report"]["n"] >= 150
    metrics = json.loads((runs / "round1_stack" / "metrics.json").read_text())
    assert set(metrics["results"]) == {"select", "report", "short_select", "short_report"}
    assert len(SentimentPredictor(out).predict(["Not bad at all.", ""])) == 2
    (out / "model.onnx").unlink()
    ship(runs, out, data, recipe, report_seconds=0.1)
    assert (out / "model.onnx").exists()
    assert json.loads((runs / "ship.json").read_text())["round1"] == first["round1"], "a round ran twice"
