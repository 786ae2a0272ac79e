"""Step 3 of 3: checkpoint -> ONNX model directory (model.onnx, vocab.json, config.json, metrics, curves).

Export fails unless onnxruntime reproduces PyTorch within 1e-5 at several batch sizes and lengths.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from senpos.runtime import make_session
from senpos.sentiment import vocab_digest
from senpos.text.vocab import Vocab
from training.sentiment.model import ModelConfig, SentimentBiLSTM, WideAndDeep, WideNgrams

log = logging.getLogger(__name__)
PARITY_TOL = 1e-5


def load_checkpoint(run_dir: Path) -> tuple[SentimentBiLSTM | WideAndDeep, dict]:
    """A BiLSTM checkpoint (train.py) or a wide & deep one (combine.py, which has a "wide" entry)."""
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = SentimentBiLSTM(ModelConfig(**ckpt["model_config"]))
    if "wide" in ckpt:
        model = WideAndDeep(model, WideNgrams(model.cfg.vocab_size, int(ckpt["wide"]["buckets"]),
                                                   int(ckpt["wide"].get("n", 2))))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def random_batch(rng: np.random.Generator, vocab_size: int, lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(2, vocab_size, n)
    return ids, np.asarray(lengths, dtype=np.int64)


def parity_check(model: SentimentBiLSTM | WideAndDeep, onnx_path: Path, seed: int = 0) -> float:
    """Max |PyTorch - onnxruntime| over batches of several sizes and mixed lengths."""
    session = make_session(onnx_path, threads=1, want="cpu")
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch, max_len in ((1, 5), (1, 400), (3, 50), (16, 300), (64, 400)):
        lengths = [int(x) for x in rng.integers(1, max_len + 1, batch)]
        ids, lens = random_batch(rng, model.cfg.vocab_size, lengths)
        with torch.no_grad():
            expected = model(torch.from_numpy(ids), torch.from_numpy(lens)).numpy()
        got = session.run(None, {"ids": ids, "lengths": lens})[0]
        worst = max(worst, float(np.abs(expected - got).max()))
    if worst > PARITY_TOL:
        raise AssertionError(f"onnxruntime differs from PyTorch by {worst:.2e} (> {PARITY_TOL})")
    log.info("parity check: max |torch - onnxruntime| = %.2e", worst)
    return worst


def _trace_export(model: SentimentBiLSTM | WideAndDeep, ids: np.ndarray, lengths: np.ndarray, path: Path) -> None:
    torch.onnx.export(
        model, (torch.from_numpy(ids), torch.from_numpy(lengths)), str(path), dynamo=False,
        input_names=["ids", "lengths"], output_names=["p_positive"], opset_version=17,
        dynamic_axes={"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "p_positive": {0: "batch"}},
    )


def export_onnx(model: SentimentBiLSTM | WideAndDeep, path: Path, vocab: Vocab) -> None:
    ids, lengths = random_batch(np.random.default_rng(0), model.cfg.vocab_size, [7, 3])
    with warnings.catch_warnings():
        # Tracer noise about nn.LSTM shape checks and the initial-state batch size: the parity check
        # below runs batch sizes 1..64 and mixed lengths, which is what those warnings are about.
        warnings.simplefilter("ignore")
        _trace_export(model, ids, lengths, path)
    proto = onnx.load(str(path))
    for key, value in (("vocab_sha256", vocab_digest(vocab)), ("vocab_size", str(len(vocab)))):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export(run_dir: Path, prepared_dir: Path, out_dir: Path) -> None:
    model, ckpt = load_checkpoint(run_dir)
    vocab = Vocab.load(prepared_dir / "vocab.json")
    if len(vocab) != model.cfg.vocab_size:
        raise ValueError(
            f"{prepared_dir / 'vocab.json'} has {len(vocab)} entries, the checkpoint {model.cfg.vocab_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out_dir / "model.onnx", vocab)
    parity = parity_check(model, out_dir / "model.onnx")
    vocab.save(out_dir / "vocab.json")
    tcfg = ckpt["train_config"]
    config = {
        "task": "sentiment",
        "labels": ["negative", "positive"],
        "preprocessing": {"tokenizer": "spacy.blank('en'), lowercased, <br /> and HTML removed",
                          "max_tokens": tcfg["max_tokens"], "head_tokens": tcfg["head_tokens"]},
        "model": {**ckpt["model_config"], **({"wide": ckpt["wide"]} if "wide" in ckpt else {})},
        "train_config": tcfg,
        "onnx": {"inputs": ["ids (batch, time) int64", "lengths (batch,) int64"], "output": "p_positive (batch,)",
                 "opset": 17, "parity_max_abs_diff": parity},
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("metrics.json", "training_curves.png"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, out_dir / name)
    for name in ("prepare.json", "split.json"):  # split.json: which lines of the data were fit / select / report
        if (prepared_dir / name).exists():
            shutil.copy(prepared_dir / name, out_dir / name)
    log.info("exported %s", out_dir)
