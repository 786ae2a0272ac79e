"""Wide & deep: join a trained BiLSTM (train.py) and a fitted wide branch (wide.py) into one model.

P(positive) = sigmoid((a + a' s) * BiLSTM logit + (b + b' s) * wide logit + c + c' s), s = 1 / sqrt(length)
(a length under 8 counts as 8). The six numbers are a logistic regression fitted on the select reviews (the data
both branches chose their epoch / C on and neither trained on) and the select part of the short-text set, so
they also calibrate the output, for whole reviews and for one-line texts alike. The report parts are scored
once, here, for every variant, and nothing is chosen on them.

    python -m training.sentiment.combine --deep runs/sentiment/run --wide runs/sentiment/wide \
        --run runs/sentiment/wide_deep
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from senpos.text.english import truncate
from senpos.text.vocab import Vocab
from training.common import make_batches
from training.sentiment.evaluate import score
from training.sentiment.model import STACK_MIN_LENGTH, ModelConfig, SentimentBiLSTM, WideAndDeep, WideNgrams
from training.sentiment.prepare import load_prepared
from training.sentiment.short_inputs import encode_short_texts, load_short_texts
from training.sentiment.train import collate
from training.sentiment.wide import fit_logistic

log = logging.getLogger(__name__)


def load_wide(wide_dir: Path, vocab_size: int) -> WideNgrams:
    cfg = json.loads((wide_dir / "wide.json").read_text())["config"]
    with np.load(wide_dir / "wide.npz") as z:
        wide = WideNgrams(vocab_size, int(cfg["buckets"]), int(cfg.get("n", 2)))
        wide.u.data.copy_(torch.from_numpy(z["u"]))
        wide.q.data.copy_(torch.from_numpy(z["q"]))
        wide.bias.data.fill_(float(z["bias"]))
    return wide


@torch.no_grad()
def branch_logits(model: WideAndDeep, seqs: list[np.ndarray], batch_size: int = 128) -> np.ndarray:
    """(n, 2): the BiLSTM's and the wide branch's logits."""
    model.eval()
    out = np.zeros((len(seqs), 2))
    for batch in make_batches([len(s) for s in seqs], batch_size, rng=None):
        ids, lengths = collate([seqs[i] for i in batch], torch.device("cpu"))
        out[batch, 0] = model.deep.logits(ids, lengths).numpy()
        out[batch, 1] = model.wide(ids, lengths).numpy()
    return out


def _fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    return fit_logistic(x, y, c=1e4, maxiter=1000)  # a handful of weights: practically unregularised


def length_features(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[deep, wide, deep * s, wide * s, s] with s = 1 / sqrt(max(length, STACK_MIN_LENGTH)): WideAndDeep.logits'
    terms, in order."""
    s = 1 / np.sqrt(np.maximum(lengths, STACK_MIN_LENGTH))
    return np.column_stack([x[:, 0], x[:, 1], x[:, 0] * s, x[:, 1] * s, s])


def combine(deep_dir: Path, wide_dir: Path, prepared_dir: Path, run_dir: Path, short_texts: str = "eval") -> dict:
    """Fit the stack on the select reviews plus the select part of the short-text set; score every part."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(deep_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    deep = SentimentBiLSTM(ModelConfig(**ckpt["model_config"]))
    deep.load_state_dict(ckpt["state_dict"])
    wide = load_wide(wide_dir, deep.cfg.vocab_size)
    model = WideAndDeep(deep, wide).eval()
    tcfg = ckpt["train_config"]
    data = load_prepared(prepared_dir)
    vocab = Vocab.load(prepared_dir / "vocab.json")

    def cut(seqs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(truncate(list(s), tcfg["max_tokens"], tcfg["head_tokens"]) or [1]) for s in seqs]

    inputs = {name: (cut(data[key][0]), data[key][1].astype(int)) for name, key in (("select", "val"),
                                                                                    ("report", "report"))}
    if short_texts:
        rows = load_short_texts(short_texts)
        for part in ("select", "report"):
            inputs[f"short_{part}"] = encode_short_texts([r for r in rows if r["part"] == part], vocab)
    parts = {name: (branch_logits(model, seqs), np.array([len(s) for s in seqs], dtype=np.float64), y)
             for name, (seqs, y) in inputs.items()}
    x_sel, _, y_sel = parts["select"]
    w_deep, b_deep = _fit_affine(x_sel[:, :1], y_sel)  # temperature (and offset) for the BiLSTM alone
    w_plain, b_plain = _fit_affine(x_sel, y_sel)
    fit_on = [parts["select"]] + ([parts["short_select"]] if short_texts else [])
    w, b = _fit_affine(np.concatenate([length_features(x, n) for x, n, _ in fit_on]),
                       np.concatenate([y for _, _, y in fit_on]))
    log.info("stacked on select: (%.3f + %.3f s) deep + (%.3f + %.3f s) wide + %.3f + %.3f s",
             w[0], w[2], w[1], w[3], b, w[4])
    variants = {
        "bilstm": lambda x, n: x[:, 0],
        "bilstm_temperature": lambda x, n: w_deep[0] * x[:, 0] + b_deep,
        "wide": lambda x, n: x[:, 1],
        "wide_and_deep_sum": lambda x, n: x[:, 0] + x[:, 1],
        "wide_and_deep_plain": lambda x, n: x @ w_plain + b_plain,
        "wide_and_deep": lambda x, n: length_features(x, n) @ w + b,
    }
    results = {part: {name: score(1 / (1 + np.exp(-f(x, n))), y) for name, f in variants.items()}
               for part, (x, n, y) in parts.items()}
    for part, rows_ in results.items():
        for name, s in rows_.items():
            log.info("%-12s %-20s acc %.4f  log loss %.4f  ECE %.4f", part, name, s["accuracy"], s["log_loss"],
                     s["ece"])
    model.combine.data.copy_(torch.tensor([w[0], w[1], b, w[2], w[3], w[4]], dtype=torch.float32))
    torch.save({"model_config": asdict(deep.cfg), "train_config": tcfg, "state_dict": model.state_dict(),
                "wide": {"buckets": wide.buckets, "n": wide.n}}, run_dir / "checkpoint.pt")
    deep_file = deep_dir / "metrics.json"  # absent while the BiLSTM is still training (best checkpoint so far)
    deep_metrics = (json.loads(deep_file.read_text()) if deep_file.exists()
                    else {"val_accuracy": None, "config": tcfg, "history": []})
    wide_metrics = json.loads((wide_dir / "wide.json").read_text())
    metrics = {**deep_metrics, "val_accuracy": results["select"]["wide_and_deep"]["accuracy"],
               "report_accuracy": results["report"]["wide_and_deep"]["accuracy"],
               "combine": {"a_deep": float(w[0]), "b_wide": float(w[1]), "c": float(b), "a_deep_s": float(w[2]),
                           "b_wide_s": float(w[3]), "c_s": float(w[4]), "fitted_on": [p for p in parts if
                                                                                      "select" in p],
                           "bilstm_temperature": 1 / float(w_deep[0])},
               "results": results, "wide": wide_metrics, "deep_val_accuracy": deep_metrics["val_accuracy"]}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if (deep_dir / "training_curves.png").exists():
        shutil.copy(deep_dir / "training_curves.png", run_dir / "training_curves.png")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    parser.add_argument("--deep", type=Path, default=Path("runs/sentiment/run"))
    parser.add_argument("--wide", type=Path, default=Path("runs/sentiment/wide"))
    parser.add_argument("--run", type=Path, default=Path("runs/sentiment/wide_deep"))
    parser.add_argument("--short-texts", default="eval", help="short-text set with select/report parts ('' = none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    m = combine(args.deep, args.wide, args.prepared, args.run, args.short_texts)
    print(json.dumps({"combine": m["combine"], "results": m["results"]}, indent=2))
