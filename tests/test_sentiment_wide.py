"""The grouped split, the wide branch (numpy features == the ONNX graph's), and wide & deep export."""

import numpy as np
import pytest
import torch

from training.sentiment.export import export_onnx, parity_check, random_batch
from training.sentiment.model import ModelConfig, SentimentBiLSTM, WideAndDeep, WideNgrams, ngram_features
from training.sentiment.split import group_reviews, grouped_split
from training.sentiment.wide import feature_matrix, fit_logistic, idf_and_nb, transform

TOL = 1e-5


def test_duplicates_and_reviews_sharing_names_are_grouped():
    texts = [
        "A great film.",
        "a  GREAT film.",  # the same text up to case and spaces
        "I thought Bruno Kessler and Marta Quint were great as Ingmar the baker.",
        "Sadly Bruno Kessler, Marta Quint and the boy who plays Ingmar cannot save it.",
        "The story of Bruno and his dog is dull.",  # one shared name is not enough
        "Nothing in common here.",
    ]
    g = group_reviews(texts, min_shared=3, max_df=30)
    assert g[0] == g[1] and g[2] == g[3]
    assert len({g[0], g[2], g[4], g[5]}) == 4


def test_grouped_split_keeps_groups_whole_and_labels_balanced():
    rng = np.random.default_rng(0)
    groups = [int(x) for x in rng.integers(0, 300, 1000)]
    labels = [int(x) for x in rng.integers(0, 2, 1000)]
    fit, select, report = grouped_split(labels, groups, (0.1, 0.1), seed=1)
    assert sorted(fit + select + report) == list(range(1000))
    sides = [{groups[i] for i in part} for part in (fit, select, report)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for part in (select, report):
        assert 80 <= len(part) <= 100
        assert abs(np.mean([labels[i] for i in part]) - np.mean(labels)) < 0.05


@pytest.mark.parametrize("n", [1, 2, 3])
def test_graph_features_equal_the_numpy_features(n):
    rng = np.random.default_rng(0)
    lengths = [5, 1, 12, 3, 2]
    ids = np.zeros((len(lengths), 12), dtype=np.int64)
    seqs = []
    for i, n in enumerate(lengths):
        seqs.append(rng.integers(2, 8, n))  # few distinct ids: many repeats
        ids[i, :n] = seqs[-1]
        ids[i, n:] = rng.integers(2, 8, 12 - n)  # junk in the padding must not count
    feats = ngram_features(torch.from_numpy(ids), torch.tensor(lengths), 50, 64, n).numpy()
    x = feature_matrix(seqs, 50, 64, n)
    for i in range(len(lengths)):
        kept = feats[i][feats[i] > 0]
        assert len(kept) == len(set(kept.tolist())), "a repeated n-gram counted twice"
        assert sorted(kept.tolist()) == sorted(x[i].indices.tolist())


def test_wide_branch_learns_a_separable_toy_problem():
    rng = np.random.default_rng(0)
    seqs = [np.concatenate([rng.integers(4, 30, 6), [2 if i % 2 else 3]]) for i in range(200)]
    y = np.array([i % 2 for i in range(200)])
    x = feature_matrix(seqs, 30, 16)
    idf, r = idf_and_nb(x, y, 1.0)
    w, b = fit_logistic(transform(x, idf, r), y, c=10.0)
    assert np.mean(((transform(x, idf, r) @ w + b) > 0) == y) == 1.0


def _wide_and_deep(seed=0):
    torch.manual_seed(seed)
    deep = SentimentBiLSTM(ModelConfig(vocab_size=50, embed_dim=8, hidden=6))
    wide = WideNgrams(50, 64, n=3)
    with torch.no_grad():
        wide.u.normal_()
        wide.q.uniform_(0.5, 2.0)
        wide.u[0], wide.q[0] = 0.0, 0.0  # the padding id never counts
    return WideAndDeep(deep, wide).eval()


def test_wide_and_deep_export_parity_and_padding_invariance(tmp_path):
    from senpos.runtime import make_session
    from senpos.text.vocab import Vocab

    model = _wide_and_deep()
    export_onnx(model, tmp_path / "m.onnx", Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(48)]))
    assert parity_check(model, tmp_path / "m.onnx") <= TOL
    session = make_session(tmp_path / "m.onnx", threads=1, want="cpu")
    rng = np.random.default_rng(2)
    short = rng.integers(2, 50, 3)
    alone = session.run(None, {"ids": short[None].astype(np.int64), "lengths": np.array([3])})[0]
    with torch.no_grad():
        assert abs(float(model(torch.from_numpy(short[None]), torch.tensor([3]))[0]) - float(alone[0])) <= TOL
    for batch in (2, 8, 33):
        ids, lengths = random_batch(rng, 50, [3] + [int(x) for x in rng.integers(100, 500, batch - 1)])
        ids[0, :3] = short
        ids[0, 3:] = rng.integers(2, 50, ids.shape[1] - 3)  # junk, not zeros, in the padding
        got = session.run(None, {"ids": ids, "lengths": lengths})[0]
        assert abs(float(got[0] - alone[0])) <= TOL, batch


def test_tiny_wide_and_deep_pipeline_exports_a_loadable_model(tmp_path, reviews_jsonl):
    """prepare -> train -> wide -> combine -> export on the 24-review fixture (a few seconds)."""
    import json

    from senpos.sentiment import SentimentPredictor
    from training.sentiment.__main__ import main as cli
    from training.sentiment.combine import combine
    from training.sentiment.wide import WideConfig, fit_wide

    prep, run = tmp_path / "prep", tmp_path / "run"
    cli(["prepare", "--train", str(reviews_jsonl), "--unsup", str(reviews_jsonl), "--out", str(prep),
         "--min-freq", "1", "--embed-dim", "16", "--w2v-epochs", "3", "--val-fraction", "0.25",
         "--report-fraction", "0.25"])
    split = json.loads((prep / "split.json").read_text())
    assert sorted(split["fit"] + split["select"] + split["report"]) == list(range(24))
    cli(["train", "--prepared", str(prep), "--run", str(run), "--hidden", "8", "--epochs", "2", "--batch-size", "4",
         "--max-tokens", "12", "--head-tokens", "4"])
    fit_wide(prep, tmp_path / "wide", WideConfig(max_tokens=12, head_tokens=4, buckets=256, n=3, c_grid=(1.0,)))
    metrics = combine(run, tmp_path / "wide", prep, tmp_path / "wd", short_texts="")
    assert set(metrics["results"]) == {"select", "report"}
    cli(["export", "--prepared", str(prep), "--run", str(tmp_path / "wd"), "--out", str(tmp_path / "model")])
    predictor = SentimentPredictor(tmp_path / "model")
    probs = predictor.predict(["A wonderful film.", "Awful and boring.", ""])
    assert probs.shape == (3,) and np.all((probs >= 0) & (probs <= 1))
    text = "A wonderful film with a brilliant cast."
    assert abs(predictor.predict([text])[0] - predictor.predict(["Boring " * 200, text, "ok"])[1]) <= TOL


def test_group_ids_do_not_depend_on_the_process():
    """Ids are each group's first member, whatever order union-find merged in (set order varies by process)."""
    texts = ["Zed Alpha and Quill Brant met Orla.", "x", "Orla, Quill Brant and Zed Alpha again.", "x"]
    assert group_reviews(texts, min_shared=3) == [0, 1, 0, 1]
