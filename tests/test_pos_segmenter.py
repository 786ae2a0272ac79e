"""The segmentation corrector (training/pos/segmenter.py, senpos.pos.BoundaryCorrector) and distillation:
batch invariance, export parity, a seconds-long training run, start-up errors; tiny self-made fixtures only."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from senpos.pos import PosTagger
from senpos.runtime import ModelLoadError
from training.pos.__main__ import main as cli
from training.pos.model import BoundaryConfig, BoundaryModel
from training.pos.segmenter import _random_batch

from .conftest import FIXTURES


@pytest.mark.parametrize("encoder", ["cnn", "lstm"])
def test_boundary_model_is_batch_invariant(encoder):
    torch.manual_seed(0)
    model = BoundaryModel(BoundaryConfig(n_chars=20, n_bigrams=30, char_dim=4, bigram_dim=4, place_dim=2,
                                         encoder=encoder, hidden=5, layers=2, width=3)).eval()
    arrays = _random_batch(np.random.default_rng(0), model.cfg, [4, 50, 9])
    with torch.no_grad():
        batched = model(*map(torch.from_numpy, arrays))[0, :4]
        alone = model(*(torch.from_numpy(a[:1, :4].copy()) for a in arrays[:3]), torch.from_numpy(arrays[3][:1]))[0]
    assert torch.allclose(batched, alone, atol=1e-5)


@pytest.fixture(scope="module")
def corrected_model(tmp_path_factory):
    """A tiny tagger, then a tiny corrector added to its directory; and a student distilled from the tagger."""
    root = tmp_path_factory.mktemp("seg")
    data = str(FIXTURES / "pos_tiny.jsonl")
    cli(["prepare", "--train", data, "--dev", data, "--out", str(root / "prep"), "--min-word-freq", "1",
         "--embed-dim", "16", "--w2v-epochs", "2"])
    cli(["train", "--prepared", str(root / "prep"), "--run", str(root / "run"), "--hidden", "16", "--epochs", "2",
         "--char-filters", "8", "--batch-size", "4", "--max-words", "6"])
    cli(["export", "--prepared", str(root / "prep"), "--run", str(root / "run"), "--out", str(root / "model")])
    cli(["segmenter", "--train", data, "--dev", data, "--run", str(root / "seg"), "--folds", "2", "--epochs", "2",
         "--hidden", "8", "--char-dim", "4", "--bigram-dim", "4", "--place-dim", "2", "--min-char-freq", "1",
         "--min-bigram-freq", "1", "--max-chars", "10", "--batch-size", "4"])
    cli(["export-segmenter", "--run", str(root / "seg"), "--out", str(root / "model"), "--min-bigram-count", "1"])
    return root


def test_corrector_segments_and_keeps_offsets(corrected_model):
    model = corrected_model / "model"
    config = json.loads((model / "config.json").read_text())
    assert config["segmentation"]["corrector"]["parity_max_abs_diff"] <= 1e-4
    assert config["segmentation"]["corrector"]["bigrams"]["table"].startswith("int8")
    tagger = PosTagger(model, max_batch=3)
    assert tagger.corrector is not None
    text = " 我们在北京工作。" * 40  # longer than one 300-character window
    words = ["我们", "热爱", "和平和", "。"]
    (r, pre, empty) = tagger.tag([text, words, "  "])
    assert all(text[a:b] == w for w, (a, b) in zip(r.words, r.offsets, strict=True))
    assert "".join(r.words) == "".join(text.split()) and len(r.tags) == len(r.words)
    assert pre.words == words and pre.offsets == [(0, 2), (2, 4), (4, 7), (7, 8)]  # never re-segmented
    assert empty.words == []
    item = "他在北京工作。"
    assert tagger.tag([item])[0] == tagger.tag(["今天下午三点开会。" * 9, item, ["好"]])[1]


def test_corrector_start_up_errors_name_the_file(corrected_model, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(corrected_model / "model", broken)
    bigrams = json.loads((broken / "seg_bigrams.json").read_text())
    (broken / "seg_bigrams.json").write_text(json.dumps({"itos": bigrams["itos"] + ["多余"]}, ensure_ascii=False))
    with pytest.raises(ModelLoadError, match="does not match segmenter.onnx"):
        PosTagger(broken)
    (broken / "segmenter.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="segmenter.onnx"):
        PosTagger(broken)
    (broken / "segmenter.onnx").unlink()
    with pytest.raises(ModelLoadError, match="segmenter.onnx.*missing"):
        PosTagger(broken)


def test_distilled_student_trains_from_a_teacher_directory(corrected_model):
    root = corrected_model
    cli(["train", "--prepared", str(root / "prep"), "--run", str(root / "student"), "--hidden", "8", "--epochs", "1",
         "--char-filters", "8", "--batch-size", "4", "--max-words", "6", "--teacher", str(root / "model")])
    metrics = json.loads((root / "student" / "metrics.json").read_text())
    assert metrics["config"]["teacher"] == str(root / "model") and 0 <= metrics["dev_token_accuracy"] <= 1


CANDIDATE = Path(__file__).resolve().parents[1] / "models" / "pos"


def test_exporting_a_tagger_into_a_directory_keeps_its_corrector(corrected_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(corrected_model / "model", model)
    corrector = json.loads((model / "config.json").read_text())["segmentation"]["corrector"]
    export = ["export", "--prepared", str(corrected_model / "prep"), "--run", str(corrected_model / "run"),
              "--out", str(model)]
    cli(export)
    assert json.loads((model / "config.json").read_text())["segmentation"]["corrector"] == corrector
    assert PosTagger(model).corrector is not None
    (model / "segmenter.onnx").unlink()  # an incomplete corrector is not claimed
    cli(export)
    assert "corrector" not in json.loads((model / "config.json").read_text())["segmentation"]
    assert PosTagger(model).corrector is None


@pytest.mark.skipif(not (CANDIDATE / "segmenter.onnx").is_file(), reason="the shipped model has no corrector")
def test_corrected_candidate_follows_the_corpus_conventions():
    tagger = PosTagger(CANDIDATE)
    (r,) = tagger.tag(["国家主席江泽民发表１９９８年新年讲话。"])
    pairs = list(zip(r.words, r.tags, strict=True))
    assert ("江", "nr") in pairs and ("泽民", "nr") in pairs  # surname + given name
    assert "１９９８年" in r.words  # a date is one word
    (r,) = tagger.tag([["他", "在", "北京", "工作", "。"]])
    assert r.words == ["他", "在", "北京", "工作", "。"] and r.tags == ["r", "p", "ns", "v", "w"]
    item = "江泽民发表新年讲话。"
    assert tagger.tag([item])[0] == tagger.tag(["中国经济发展迅速。" * 30, item, ["好"]])[1]
    evaluation = json.loads((CANDIDATE / "evaluation.json").read_text())
    assert evaluation["end_to_end"]["segmentation_f1"] >= 0.955 and evaluation["end_to_end"]["seg_pos_f1"] >= 0.925
    assert sum(f.stat().st_size for f in CANDIDATE.iterdir()) < 32 * 2**20


def test_ship_runs_the_whole_pos_recipe_and_resumes(tmp_path):
    """prepare -> tagger -> fine-tune -> export -> corrector -> fine-tune -> export it -> evaluate, on the tiny
    fixture; a second call finds every training step done and only exports and evaluates again."""
    from training.pos.ship import ship

    data = tmp_path / "pfr"
    data.mkdir()
    for name in ("train", "dev"):
        with gzip.open(data / f"{name}.jsonl.gz", "wb") as f:
            f.write((FIXTURES / "pos_tiny.jsonl").read_bytes())
    tagger = {"hidden": 16, "epochs": 1, "char_filters": 8, "batch_size": 4, "max_words": 6}
    segmenter = {"folds": 2, "epochs": 1, "hidden": 8, "char_dim": 4, "bigram_dim": 4, "place_dim": 2,
                 "min_char_freq": 1, "min_bigram_freq": 1, "max_chars": 10, "batch_size": 4}
    recipe = {"prepare": {"min_word_freq": 1, "embed_dim": 16, "w2v_epochs": 1}, "tagger": tagger,
              "tagger_finetune": {**tagger, "lr": 1e-3}, "segmenter": segmenter,
              "segmenter_finetune": {**segmenter, "lr": 1e-3}, "min_bigram_count": 1}
    runs, out = tmp_path / "runs", tmp_path / "model"
    first = ship(runs, out, data, recipe)
    assert list(first) == ["prepare", "tagger", "tagger_finetune", "export", "segmenter", "segmenter_finetune",
                           "export_segmenter", "evaluate"]
    assert (out / "segmenter.onnx").is_file() and "end_to_end" in json.loads((out / "evaluation.json").read_text())
    assert len(PosTagger(out).tag(["我们热爱和平。"])[0].words) >= 1
    again = ship(runs, out, data, recipe)
    assert again["tagger"] == first["tagger"], "a training step ran twice"
