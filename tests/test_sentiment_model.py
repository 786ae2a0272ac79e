"""The BiLSTM: padding invariance (PyTorch and ONNX), export parity, and a seconds-long training run."""

import json

import numpy as np
import pytest
import torch

from senpos.runtime import ModelLoadError
from senpos.sentiment import SentimentPredictor
from training.common import make_batches
from training.layers import reverse_index
from training.sentiment.__main__ import main as cli
from training.sentiment.export import export_onnx, parity_check, random_batch
from training.sentiment.model import ModelConfig, SentimentBiLSTM

TOL = 1e-5


def _model(layers=2, pooling="concat", seed=0):
    torch.manual_seed(seed)
    return SentimentBiLSTM(ModelConfig(vocab_size=50, embed_dim=8, hidden=6, layers=layers, pooling=pooling)).eval()


def test_reverse_index_reverses_only_the_real_tokens():
    idx = reverse_index(torch.tensor([3, 1, 5]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]


@pytest.mark.parametrize("layers,pooling", [(1, "concat"), (2, "concat"), (2, "last")])
def test_padding_does_not_leak_in_pytorch(layers, pooling):
    model = _model(layers, pooling)
    rng = np.random.default_rng(1)
    short = rng.integers(2, 50, 4)
    alone = model(torch.tensor(short[None]), torch.tensor([4]))
    ids, lengths = random_batch(rng, 50, [4, 300, 120])
    ids[0, :4] = short
    batched = model(torch.from_numpy(ids), torch.from_numpy(lengths))
    assert abs(float(alone[0] - batched[0])) <= TOL
    # Whatever sits in the padding positions must not matter either.
    ids[0, 4:] = rng.integers(2, 50, ids.shape[1] - 4)
    assert abs(float(model(torch.from_numpy(ids), torch.from_numpy(lengths))[0] - alone[0])) <= TOL


def test_export_parity_and_padding_invariance_in_onnxruntime(tmp_path):
    from senpos.runtime import make_session
    from senpos.text.vocab import Vocab

    model = _model()
    vocab = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(48)])
    export_onnx(model, tmp_path / "m.onnx", vocab)
    assert parity_check(model, tmp_path / "m.onnx") <= TOL
    session = make_session(tmp_path / "m.onnx", threads=1, want="cpu")
    rng = np.random.default_rng(2)
    short = rng.integers(2, 50, 3)
    alone = session.run(None, {"ids": short[None].astype(np.int64), "lengths": np.array([3])})[0]
    for batch in (2, 8, 33):
        ids, lengths = random_batch(rng, 50, [3] + [int(x) for x in rng.integers(100, 500, batch - 1)])
        ids[0, :3] = short
        got = session.run(None, {"ids": ids, "lengths": lengths})[0]
        assert abs(float(got[0] - alone[0])) <= TOL, batch


def test_make_batches_covers_every_review_once():
    lengths = [5, 1, 9, 3, 7, 2, 8]
    for rng in (None, __import__("random").Random(0)):
        batches = make_batches(lengths, 3, rng)
        assert sorted(i for b in batches for i in b) == list(range(7))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, reviews_jsonl):
    """prepare -> train -> export through the CLI on the 24-review fixture (a few seconds)."""
    root = tmp_path_factory.mktemp("tiny")
    common = ["--prepared", str(root / "prep")]
    cli(["prepare", "--train", str(reviews_jsonl), "--unsup", str(reviews_jsonl), "--out", str(root / "prep"),
         "--min-freq", "1", "--embed-dim", "16", "--w2v-epochs", "3", "--val-fraction", "0.25"])
    cli(["train", *common, "--run", str(root / "run"), "--hidden", "8", "--epochs", "4", "--batch-size", "4",
         "--lr", "0.01", "--max-tokens", "12", "--head-tokens", "4"])
    cli(["export", *common, "--run", str(root / "run"), "--out", str(root / "model")])
    return root


def test_tiny_training_run_yields_a_loadable_model(tiny_model_dir):
    model_dir = tiny_model_dir / "model"
    for name in ("model.onnx", "vocab.json", "config.json", "metrics.json", "training_curves.png"):
        assert (model_dir / name).is_file(), name
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["history"] and 0.0 <= metrics["val_accuracy"] <= 1.0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["preprocessing"] == {**config["preprocessing"], "max_tokens": 12, "head_tokens": 4}
    predictor = SentimentPredictor(model_dir)
    probs = predictor.predict(["A wonderful film.", "Awful and boring.", ""])
    assert probs.shape == (3,) and np.all((probs >= 0) & (probs <= 1))


def test_predictor_is_batch_invariant(tiny_model_dir):
    predictor = SentimentPredictor(tiny_model_dir / "model", max_batch=4)
    text = "A wonderful film with a brilliant cast."
    alone = predictor.predict([text])[0]
    crowd = predictor.predict(["Awful. " * 50, text, "Boring " * 200, "ok", "Great! " * 30])
    assert abs(crowd[1] - alone) <= TOL


def test_predictor_rejects_mismatched_vocab(tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir / "model", broken)
    vocab = json.loads((broken / "vocab.json").read_text())
    vocab["itos"] = vocab["itos"][:-1]
    (broken / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ModelLoadError, match="vocab.json.*does not match"):
        SentimentPredictor(broken)
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    shutil.copy(tiny_model_dir / "model" / "vocab.json", broken / "vocab.json")
    with pytest.raises(ModelLoadError, match="model.onnx"):
        SentimentPredictor(broken)
    (broken / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json.*missing"):
        SentimentPredictor(broken)


def test_adversarial_embeddings_move_each_text_by_epsilon_words_uphill():
    """Each text moves by epsilon typical word vectors' length, along its own loss gradient: the loss rises."""
    from training.sentiment.train import adversarial_embeddings

    torch.manual_seed(0)
    model = SentimentBiLSTM(ModelConfig(vocab_size=30, embed_dim=4, hidden=3, dropout=0.0)).eval()
    ids, lengths = torch.randint(2, 30, (3, 7)), torch.tensor([7, 5, 2])
    ids[1, 5:], ids[2, 2:] = 0, 0
    target = torch.tensor([1.0, 0.0, 1.0])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    embedded = model.embedding(ids)
    loss = loss_fn(model.logits(ids, lengths, embedded), target)
    (grad,) = torch.autograd.grad(loss, embedded)
    moved = adversarial_embeddings(embedded, grad, epsilon=0.5, word_norm=2.0)
    step = (moved - embedded).flatten(1).norm(dim=1)
    assert torch.allclose(step, torch.full((3,), 1.0), atol=1e-5)
    assert not (moved - embedded)[2, 2:].any(), "padding moved"
    with torch.no_grad():
        assert loss_fn(model.logits(ids, lengths, moved), target) > loss
        assert torch.equal(model.logits(ids, lengths, embedded), model.logits(ids, lengths))
