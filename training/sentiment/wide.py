"""The wide branch: NB-weighted TF-IDF logistic regression over the model's own token ids (uni + hashed bigrams).

Fitted on the fit part with numpy/scipy in seconds; the regularisation is picked on the select part. The
features are computed here exactly as `model.ngram_features` computes them inside the ONNX graph (same
truncation, same hashing), and the result is two weight tables for `model.WideNgrams`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse as sp

from senpos.text.english import truncate
from training.sentiment.model import NGRAM_MULT
from training.sentiment.prepare import load_prepared

log = logging.getLogger(__name__)


@dataclass
class WideConfig:
    max_tokens: int = 400  # the deep model's truncation: both branches read the same ids
    head_tokens: int = 100
    buckets: int = 2**20
    n: int = 2  # longest n-gram
    nb_alpha: float = 1.0
    c_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)


def feature_matrix(seqs: list[np.ndarray], vocab_size: int, buckets: int, n: int = 2) -> sp.csr_matrix:
    """Binary (review x n-gram) matrix: unigram ids and vocab_size + hashed 2..n-grams, hashed as
    `model.ngram_features` does; column 0 (padding) unused."""
    rows, cols = [], []
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.int64)
        parts, key = [s], s
        for k in range(1, n):
            key = key[:-1] * NGRAM_MULT + s[k:]
            parts.append(vocab_size + key % buckets)
        f = np.unique(np.concatenate(parts))
        rows.append(np.full(len(f), i))
        cols.append(f)
    data = np.ones(sum(len(c) for c in cols), dtype=np.float64)
    x = sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(len(seqs), vocab_size + buckets))
    x.sum_duplicates()
    return x


def idf_and_nb(x: sp.csr_matrix, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed idf (0 for n-grams never seen in training) and naive-Bayes log-count ratios."""
    df = np.asarray(x.sum(axis=0)).ravel()
    idf = np.where(df > 0, np.log((1 + x.shape[0]) / (1 + df)) + 1, 0.0)
    idf[0] = 0.0
    p = alpha + np.asarray(x[y == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[y == 0].sum(axis=0)).ravel()
    return idf, np.log(p / p.sum()) - np.log(q / q.sum())


def transform(x: sp.csr_matrix, idf: np.ndarray, r: np.ndarray) -> sp.csr_matrix:
    """Binary -> L2-normalised TF-IDF, then scaled by r (the normalisation uses idf only)."""
    z = x @ sp.diags(idf)
    norm = np.sqrt(np.asarray(z.multiply(z).sum(axis=1)).ravel()) + 1e-3
    return sp.diags(1 / norm) @ z @ sp.diags(r)


def fit_logistic(z: sp.csr_matrix, y: np.ndarray, c: float, maxiter: int = 500) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (sklearn's objective: C * sum of losses + |w|^2 / 2), L-BFGS."""
    sign = 2 * y - 1

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        m = sign * (z @ w + b)
        loss = np.logaddexp(0, -m)
        g = -sign / (1 + np.exp(m))
        grad = np.concatenate([c * (z.T @ g) + w, [c * g.sum()]])
        return c * loss.sum() + 0.5 * w @ w, grad

    res = scipy.optimize.minimize(objective, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B",
                                  options={"maxiter": maxiter})
    return res.x[:-1], float(res.x[-1])


def accuracy(logit: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((logit > 0) == y))


def fit_wide(prepared_dir: Path, run_dir: Path, cfg: WideConfig) -> dict:
    """Fit on `train` (the fit part), pick C on `val` (select); write wide.npz and wide.json to `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_prepared(prepared_dir)
    vocab_size = len(data["embeddings"])

    def cut(seqs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(truncate(list(s), cfg.max_tokens, cfg.head_tokens) or [1]) for s in seqs]

    t0 = time.time()
    (fit_x, fit_y), (sel_x, sel_y) = data["train"], data["val"]
    x_fit = feature_matrix(cut(fit_x), vocab_size, cfg.buckets, cfg.n)
    x_sel = feature_matrix(cut(sel_x), vocab_size, cfg.buckets, cfg.n)
    idf, r = idf_and_nb(x_fit, fit_y, cfg.nb_alpha)
    z_fit, z_sel = transform(x_fit, idf, r), transform(x_sel, idf, r)
    sweep, best = [], None
    for c in cfg.c_grid:
        w, b = fit_logistic(z_fit, fit_y, c)
        acc = accuracy(z_sel @ w + b, sel_y)
        sweep.append({"C": c, "select_accuracy": acc})
        log.info("wide C=%g: select accuracy %.4f", c, acc)
        if best is None or acc > best[0]:
            best = (acc, c, w, b)
    acc, c, w, b = best
    u = (w * r * idf).astype(np.float32)
    np.savez(run_dir / "wide.npz", u=u, q=(idf**2).astype(np.float32), bias=np.float32(b))
    metrics = {"select_accuracy": acc, "C": c, "sweep": sweep, "config": asdict(cfg), "vocab_size": vocab_size,
               "features_seen": int((idf > 0).sum()), "seconds": round(time.time() - t0, 1)}
    (run_dir / "wide.json").write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    parser.add_argument("--run", type=Path, default=Path("runs/sentiment/wide"))
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--head-tokens", type=int, default=100)
    parser.add_argument("--buckets", type=int, default=2**20)
    parser.add_argument("--n", type=int, default=2, help="longest n-gram")
    parser.add_argument("--nb-alpha", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = WideConfig(max_tokens=args.max_tokens, head_tokens=args.head_tokens, buckets=args.buckets, n=args.n,
                     nb_alpha=args.nb_alpha)
    print(json.dumps({k: v for k, v in fit_wide(args.prepared, args.run, cfg).items() if k != "config"}, indent=2))
