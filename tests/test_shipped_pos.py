"""The shipped tagger in models/pos: loads, tags clear sentences right, keeps offsets, stays batch invariant."""

import json
from pathlib import Path

import pytest

from senpos.pos import PosTagger

MODEL = Path(__file__).resolve().parents[1] / "models" / "pos"


@pytest.fixture(scope="module")
def tagger():
    return PosTagger(MODEL)


def test_clear_sentences(tagger):
    (r,) = tagger.tag(["我们热爱和平。"])
    assert list(zip(r.words, r.tags, strict=True)) == [("我们", "r"), ("热爱", "v"), ("和平", "n"), ("。", "w")]
    (r,) = tagger.tag([["他", "在", "北京", "工作", "。"]])
    assert r.tags == ["r", "p", "ns", "v", "w"]


def test_half_and_full_width_are_tagged_alike(tagger):
    half, full = tagger.tag(["1998年3月，经济增长了5%。", "１９９８年３月，经济增长了５％。"])
    assert half.tags == full.tags
    assert full.words[0] == "１９９８年" and full.tags[0] == "t"  # original characters come back


def test_offsets_map_back_to_the_input(tagger):
    text = "  新华社北京１月１日电　国家主席江泽民发表新年讲话。"
    (r,) = tagger.tag([text])
    assert all(text[a:b] == w for w, (a, b) in zip(r.words, r.offsets, strict=True))
    assert "".join(r.words) == "".join(text.split())


def test_long_input_every_word_tagged(tagger):
    text = "人民生活水平不断提高，" * 120  # far more words than one window
    (r,) = tagger.tag([text])
    assert len(r.tags) == len(r.words) and "".join(r.words) == text
    assert r.tags[:2] == r.tags[len(r.tags) // 2 : len(r.tags) // 2 + 2]  # the repeated phrase tagged alike


def test_batch_invariance(tagger):
    item = "江泽民发表新年讲话。"
    assert tagger.tag([item])[0] == tagger.tag(["中国经济发展迅速。" * 30, item, ["好"]])[1]


def test_shipped_artifacts_are_consistent():
    metrics = json.loads((MODEL / "metrics.json").read_text())
    evaluation = json.loads((MODEL / "evaluation.json").read_text())
    assert metrics["dev_token_accuracy"] >= 0.965
    assert abs(evaluation["token_accuracy_gold_segmentation"] - metrics["dev_token_accuracy"]) < 1e-3
    assert evaluation["end_to_end"]["seg_pos_f1"] >= 0.85
    assert sum(f.stat().st_size for f in MODEL.iterdir()) < 32 * 2**20
