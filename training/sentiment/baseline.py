"""The classical baselines on the same fit / select / report split: logistic regression over TF-IDF
unigrams + bigrams of the full text, plain and naive-Bayes-weighted (NB-LR), as scikit-learn's defaults
would build them (lowercase, tokens of 2+ word characters, every n-gram seen in fit, smooth idf, L2 norm).
C is picked on select; report is scored once.

    python -m training.sentiment.baseline --prepared runs/sentiment/prepared
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from training.sentiment.data import load_reviews
from training.sentiment.wide import accuracy, fit_logistic

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def ngrams(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def counts(texts: list[str], index: dict[str, int], grow: bool) -> sp.csr_matrix:
    rows, cols = [], []
    for i, text in enumerate(texts):
        for g in set(ngrams(text)):
            j = index.get(g)
            if j is None and grow:
                j = index[g] = len(index)
            if j is not None:
                rows.append(i)
                cols.append(j)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(index)))


def tfidf(tf: sp.csr_matrix, idf: np.ndarray, r: np.ndarray | None) -> sp.csr_matrix:
    z = tf @ sp.diags(idf)
    z = sp.diags(1 / (np.sqrt(np.asarray(z.multiply(z).sum(axis=1)).ravel()) + 1e-12)) @ z
    return z @ sp.diags(r) if r is not None else z


def run(prepared_dir: Path, c_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)) -> dict:
    prep = json.loads((prepared_dir / "prepare.json").read_text())
    split = json.loads((prepared_dir / "split.json").read_text())
    reviews = load_reviews(prep["train"])
    texts = {k: [reviews[i].text for i in split[k]] for k in ("fit", "select", "report")}
    labels = {k: np.array([reviews[i].label for i in split[k]]) for k in split}
    index: dict[str, int] = {}
    x_fit = counts(texts["fit"], index, grow=True)
    xs = {"fit": x_fit, **{k: counts(texts[k], index, grow=False) for k in ("select", "report")}}
    # sklearn's TfidfVectorizer counts repeats (tf = count); the NB ratio uses presence.
    tfs = {k: _term_counts(texts[k], index) for k in xs}
    df = np.asarray(x_fit.sum(axis=0)).ravel()
    idf = np.log((1 + len(texts["fit"])) / (1 + df)) + 1
    y = labels["fit"]
    p = 1 + np.asarray(x_fit[y == 1].sum(axis=0)).ravel()
    q = 1 + np.asarray(x_fit[y == 0].sum(axis=0)).ravel()
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    out = {"features": len(index)}
    for name, ratio in (("tfidf_lr", None), ("nb_tfidf_lr", r)):
        z = {k: tfidf(tfs[k], idf, ratio) for k in xs}
        best = None
        for c in c_grid:
            w, b = fit_logistic(z["fit"], y, c)
            acc = accuracy(z["select"] @ w + b, labels["select"])
            log.info("%s C=%g: select %.4f", name, c, acc)
            if best is None or acc > best[0]:
                best = (acc, c, w, b)
        acc, c, w, b = best
        out[name] = {"C": c, "select_accuracy": acc, "report_accuracy": accuracy(z["report"] @ w + b,
                                                                                   labels["report"])}
    return out


def _term_counts(texts: list[str], index: dict[str, int]) -> sp.csr_matrix:
    rows, cols = [], []
    for i, text in enumerate(texts):
        for g in ngrams(text):
            j = index.get(g)
            if j is not None:
                rows.append(i)
                cols.append(j)
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(index)))
    x.sum_duplicates()
    return x


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.prepared)
    (args.prepared / "baseline.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
