"""Step 1 of 3: tokenise, split, build the vocabulary and train word2vec; write a `prepared/` directory.

The prepared directory holds only numpy arrays and JSON, so `train.py` needs nothing but torch and
numpy (it can run on a GPU machine that has no spaCy or gensim).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from senpos.text.english import tokenize_many
from senpos.text.vocab import Vocab
from training.sentiment.data import Review, load_reviews
from training.sentiment.split import group_reviews, grouped_split

log = logging.getLogger(__name__)
MAX_STORED_TOKENS = 3000  # longer than any IMDB review; truncation itself is a training choice


@dataclass
class PrepareConfig:
    train: str
    unsup: str | None = None  # unlabelled reviews: word2vec (and the vocabulary with vocab_unsup); no labels
    val_fraction: float = 0.1  # the "select" part: epochs, hyperparameters, stacking, temperature
    report_fraction: float = 0.1  # the "report" part: scored once, for the card's headline
    seed: int = 13
    min_freq: int = 3
    max_vocab: int = 30000
    embed_dim: int = 100
    w2v_epochs: int = 5
    w2v_window: int = 5
    vectors: str | None = None  # GloVe/word2vec text file used instead of training word2vec
    split_from: str | None = None  # a split.json (fit / select / report line numbers) to reuse instead of grouping
    vocab_unsup: bool = False  # also count the unlabelled reviews' tokens for the vocabulary (no labels involved)


def pack(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length id lists as one flat array plus offsets (compact, no padding)."""
    lengths = np.array([len(x) for x in token_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.fromiter((i for ids in token_ids for i in ids), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def train_word2vec(token_lists: list[list[str]], cfg: PrepareConfig, vocab: Vocab) -> np.ndarray:
    from gensim.models import Word2Vec

    log.info("word2vec: %d texts, dim %d, %d epochs", len(token_lists), cfg.embed_dim, cfg.w2v_epochs)
    w2v = Word2Vec(
        sentences=token_lists, vector_size=cfg.embed_dim, window=cfg.w2v_window, min_count=cfg.min_freq,
        sg=1, negative=5, epochs=cfg.w2v_epochs, workers=2, seed=cfg.seed,
    )
    return _embedding_matrix(vocab, w2v.wv.key_to_index, w2v.wv.vectors, cfg)


def read_text_vectors(path: str, vocab: Vocab, cfg: PrepareConfig) -> np.ndarray:
    """Read GloVe or word2vec text format (an optional `count dim` header line is skipped)."""
    index, rows = {}, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) == 2:  # word2vec header
                continue
            if len(parts) - 1 != cfg.embed_dim:
                raise ValueError(f"{path}: vector of size {len(parts) - 1}, expected --embed-dim {cfg.embed_dim}")
            if parts[0] in vocab.stoi and parts[0] not in index:
                index[parts[0]] = len(rows)
                rows.append(np.asarray(parts[1:], dtype=np.float32))
    return _embedding_matrix(vocab, index, np.stack(rows) if rows else np.zeros((0, cfg.embed_dim)), cfg)


def _embedding_matrix(vocab: Vocab, index: dict, vectors: np.ndarray, cfg: PrepareConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    scale = float(vectors.std()) if len(vectors) else 0.1
    matrix = rng.normal(0, scale, (len(vocab), cfg.embed_dim)).astype(np.float32)
    matrix[0] = 0.0  # padding
    found = 0
    for i, tok in enumerate(vocab.itos[2:], start=2):
        if tok in index:
            matrix[i] = vectors[index[tok]]
            found += 1
    log.info("pretrained vectors for %d of %d vocabulary entries", found, len(vocab) - 2)
    return matrix


def prepare(cfg: PrepareConfig, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    reviews = load_reviews(cfg.train)
    if cfg.split_from:  # the same parts as an earlier model, so figures compare on the same reviews
        given = json.loads(Path(cfg.split_from).read_text())
        fit_i, select_i, report_i = given["fit"], given["select"], given["report"]
    else:
        groups = group_reviews([r.text for r in reviews])
        fit_i, select_i, report_i = grouped_split([r.label for r in reviews], groups,
                                                  (cfg.val_fraction, cfg.report_fraction), cfg.seed)
    train, val, report = ([reviews[i] for i in idx] for idx in (fit_i, select_i, report_i))
    log.info("%d labelled reviews: %d fit, %d select, %d report", len(reviews), len(train), len(val), len(report))

    def tok(rs: list[Review]) -> list[list[str]]:
        return [t[:MAX_STORED_TOKENS] for t in tokenize_many(r.text for r in rs)]

    train_tokens, val_tokens, report_tokens = tok(train), tok(val), tok(report)
    unsup = tok(load_reviews(cfg.unsup, split="unsup", include_unlabelled=True)) if cfg.unsup else []
    # From the fit part (and, if asked, unlabelled text): nothing of select or report decides the vocabulary.
    vocab = Vocab.build(train_tokens + (unsup if cfg.vocab_unsup else []), cfg.min_freq, cfg.max_vocab)
    log.info("vocabulary: %d entries", len(vocab))
    if cfg.vectors:
        embeddings = read_text_vectors(cfg.vectors, vocab, cfg)
    else:
        embeddings = train_word2vec(train_tokens + val_tokens + report_tokens + unsup, cfg, vocab)  # no labels

    arrays = {}
    for name, rs, toks in (("train", train, train_tokens), ("val", val, val_tokens), ("report", report, report_tokens)):
        arrays[f"{name}_ids"], arrays[f"{name}_offsets"] = pack([vocab.encode(t) for t in toks])
        arrays[f"{name}_labels"] = np.array([r.label for r in rs], dtype=np.int64)
    np.savez_compressed(out_dir / "data.npz", embeddings=embeddings, **arrays)
    vocab.save(out_dir / "vocab.json")
    (out_dir / "prepare.json").write_text(json.dumps(asdict(cfg), indent=2))
    split = {"fit": fit_i, "select": select_i, "report": report_i}  # line numbers in cfg.train
    (out_dir / "split.json").write_text(json.dumps(split))
    log.info("wrote %s", out_dir)


def load_prepared(prepared_dir: Path) -> dict:
    """The arrays written by `prepare` (no spaCy or gensim needed)."""
    with np.load(prepared_dir / "data.npz") as z:
        data = {k: z[k] for k in z.files}
    out = {"embeddings": data["embeddings"]}
    for name in ("train", "val", "report"):
        if f"{name}_ids" in data:
            out[name] = (unpack(data[f"{name}_ids"], data[f"{name}_offsets"]), data[f"{name}_labels"])
    return out
