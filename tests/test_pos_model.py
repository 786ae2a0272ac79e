"""The tagger: padding invariance (PyTorch and ONNX), export parity, windowing, a seconds-long training run."""

import json
import shutil

import numpy as np
import pytest
import torch

from senpos.pos import PosTagger, windows
from senpos.runtime import ModelLoadError
from training.pos.__main__ import main as cli
from training.pos.export import export_onnx, parity_check, random_batch
from training.pos.model import Tagger, TaggerConfig
from training.pos.prune import prune, teacher_from_onnx
from training.pos.train import collate

from .conftest import FIXTURES


def _model(layers=1):
    torch.manual_seed(0)
    cfg = TaggerConfig(n_words=40, n_chars=30, n_tags=5, word_dim=8, char_dim=6, char_filters=7, hidden=6,
                       layers=layers, n_lex=4, lex_dim=3)
    return Tagger(cfg).eval()


@pytest.mark.parametrize("layers", [1, 2])
def test_padding_and_batch_do_not_change_tags_in_pytorch(layers):
    model = _model(layers)
    rng = np.random.default_rng(0)
    words, chars, lex, lengths = random_batch(rng, model.cfg, [4, 60, 17])
    with torch.no_grad():
        batched = model(*map(torch.from_numpy, (words, chars, lex, lengths)))[0, :4]
        alone = model(*map(torch.from_numpy, (words[:1, :4], chars[:1, :4, :], lex[:1, :4], lengths[:1])))[0]
        # Fewer character columns (the batch's longest word decides them) must not matter either.
        used = int((chars[0, :4] != 0).sum(-1).max())
        narrow = model(*map(torch.from_numpy, (words[:1, :4], chars[:1, :4, :used].copy(), lex[:1, :4],
                                               lengths[:1])))[0]
    assert torch.allclose(batched, alone, atol=1e-5) and torch.allclose(narrow, alone, atol=1e-5)


def test_export_parity_and_onnx_batch_invariance(tmp_path):
    from senpos.runtime import make_session
    from senpos.text.vocab import Vocab

    model = _model()
    words = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(38)])
    chars = Vocab(["<pad>", "<unk>"] + [f"c{i}" for i in range(28)])
    export_onnx(model, tmp_path / "m.onnx", words, chars, list("abcde"), ["<none>", "n", "v", "a"])
    assert parity_check(model, tmp_path / "m.onnx") <= 1e-4
    session = make_session(tmp_path / "m.onnx", threads=1, want="cpu")
    rng = np.random.default_rng(3)
    w, c, lx, n = random_batch(rng, model.cfg, [5, 90, 33])
    batched = session.run(None, {"words": w, "chars": c, "lex": lx, "lengths": n})[0][0, :5]
    alone = session.run(None, {"words": w[:1, :5], "chars": c[:1, :5], "lex": lx[:1, :5], "lengths": n[:1]})[0][0]
    assert np.abs(batched - alone).max() <= 1e-5


def test_windows_tag_every_word_once():
    for n in (0, 1, 150, 151, 659, 1000):
        wins = windows(n, 150, 20)
        kept = [i for _, _, a, b in wins for i in range(a, b)]
        assert kept == list(range(n)), n
        assert all(end - start <= 150 and start <= a and b <= end for start, end, a, b in wins)
        assert all(a - start >= 20 or start == 0 for start, _, a, _ in wins)


@pytest.fixture(scope="module")
def tiny_pos_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("pos")
    data = str(FIXTURES / "pos_tiny.jsonl")
    cli(["prepare", "--train", data, "--dev", data, "--out", str(root / "prep"), "--min-word-freq", "1",
         "--embed-dim", "16", "--w2v-epochs", "2"])
    cli(["train", "--prepared", str(root / "prep"), "--run", str(root / "run"), "--hidden", "16", "--epochs", "3",
         "--char-filters", "8", "--batch-size", "4", "--max-words", "6"])
    cli(["export", "--prepared", str(root / "prep"), "--run", str(root / "run"), "--out", str(root / "model")])
    return root / "model"


def test_tiny_training_run_yields_a_loadable_tagger(tiny_pos_model):
    for name in ("features.onnx", "model.onnx", "model.int8.onnx", "words.json", "chars.json", "tags.json",
                 "lexicon_tags.json", "jieba_dict.txt", "config.json", "metrics.json", "training_curves.png"):
        assert (tiny_pos_model / name).is_file(), name
    config = json.loads((tiny_pos_model / "config.json").read_text())
    assert 0 <= config["onnx"]["int8"]["rebuilt_parity_max_abs_diff"] <= 1e-4  # the rebuilt float tagger
    tagger = PosTagger(tiny_pos_model)
    assert tagger.tagger_file.name == "model.int8.onnx"
    text = "我们在北京工作。" * 3  # longer than the 6-word windows
    (result,) = tagger.tag([text])
    assert "".join(result.words) == text and len(result.tags) == len(result.words)
    assert all(text[a:b] == w for w, (a, b) in zip(result.words, result.offsets, strict=True))
    assert set(result.tags) <= set(json.loads((tiny_pos_model / "tags.json").read_text()))


def test_tagger_keeps_pre_segmented_words(tiny_pos_model):
    tagger = PosTagger(tiny_pos_model)
    words = ["我们", "热爱", "和平和", "。"]
    (result,) = tagger.tag([words])
    assert result.words == words and result.offsets == [(0, 2), (2, 4), (4, 7), (7, 8)]


def test_tagger_is_batch_invariant(tiny_pos_model):
    tagger = PosTagger(tiny_pos_model, max_batch=3)
    item = "他在北京工作。"
    alone = tagger.tag([item])[0]
    crowd = tagger.tag(["今天下午三点开会。" * 9, item, ["好"], "中国经济发展迅速。" * 4])[1]
    assert crowd == alone


def test_tagger_start_up_errors_name_the_file(tiny_pos_model, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(tiny_pos_model, broken)
    words = json.loads((broken / "words.json").read_text())
    (broken / "words.json").write_text(json.dumps({"itos": words["itos"] + ["多余"]}, ensure_ascii=False))
    with pytest.raises(ModelLoadError, match="words.json.*does not match"):
        PosTagger(broken)
    shutil.copy(tiny_pos_model / "words.json", broken / "words.json")
    (broken / "tags.json").write_text('["n"]')
    with pytest.raises(ModelLoadError, match="tags.json"):
        PosTagger(broken)
    (broken / "jieba_dict.txt").unlink()
    with pytest.raises(ModelLoadError, match="jieba_dict.txt.*missing"):
        PosTagger(broken)


def test_teacher_rebuilt_from_onnx_scores_like_the_exported_tagger(tiny_pos_model):
    teacher = teacher_from_onnx(tiny_pos_model)
    tagger = PosTagger(tiny_pos_model, precision="float")
    encoded = [tagger.encode(words) for words in (["我们", "在", "北京", "工作", "。"], ["他", "热爱", "新词语", "。"])]
    expected = tagger.scores_encoded(encoded)
    batch = collate([(w, c, x, np.zeros(len(w), dtype=np.int64)) for w, c, x in encoded], torch.device("cpu"))
    with torch.no_grad():
        got = teacher(*batch[:4])
    for row, scores in enumerate(expected):
        assert np.abs(got[row, : len(scores)].numpy() - scores).max() <= 1e-4


def test_pruning_units_nothing_reads_changes_no_score():
    model = _model(layers=2)  # 6 units per direction
    silent = (1, 4)
    for k, layer in enumerate(model.layers):
        readers = ([model.layers[k + 1].fwd.weight_ih_l0, model.layers[k + 1].bwd.weight_ih_l0]
                   if k + 1 < len(model.layers) else [model.out.weight])
        for d, lstm in enumerate((layer.fwd, layer.bwd)):
            for unit in silent:
                lstm.weight_hh_l0.data[:, unit] = 0
                for weight in readers:
                    weight.data[:, d * 6 + unit] = 0
    with pytest.raises(ValueError, match="between 1 and the teacher's 6"):
        prune(model, 7, [torch.ones(12) for _ in model.layers])
    small = prune(model, 4, [torch.ones(12) for _ in model.layers])
    assert small.cfg.hidden == 4 and small.layers[1].fwd.input_size == 8
    inputs = [torch.from_numpy(a) for a in random_batch(np.random.default_rng(2), model.cfg, [4, 9, 1])]
    with torch.no_grad():
        assert torch.allclose(model(*inputs), small(*inputs), atol=1e-6)


def test_a_pruned_tagger_fine_tunes_against_its_teacher_and_exports(tiny_pos_model, tmp_path):
    prepared = tiny_pos_model.parent / "prep"
    cli(["prune", "--teacher", str(tiny_pos_model), "--prepared", str(prepared), "--hidden", "12",
         "--run", str(tmp_path / "pruned")])
    cli(["train", "--prepared", str(prepared), "--run", str(tmp_path / "run"), "--hidden", "12", "--epochs", "1",
         "--char-filters", "8", "--batch-size", "4", "--max-words", "6", "--lr", "1e-4",
         "--init-from", str(tmp_path / "pruned" / "checkpoint.pt"), "--teacher", str(tiny_pos_model)])
    cli(["export", "--prepared", str(prepared), "--run", str(tmp_path / "run"), "--out", str(tmp_path / "model")])
    tagger = PosTagger(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model"]["hidden"] == 12
    (result,) = tagger.tag(["我们在北京工作。"])
    assert "".join(result.words) == "我们在北京工作。"
