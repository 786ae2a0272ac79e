"""The segmentation corrector: a character BiLSTM that decides where words begin, with jieba's words as a feature.

jieba (with the corpus dictionary) stays the first segmenter; this model reads each character, the bigram ending
at it and its place in jieba's word (senpos.text.chinese.boundary_features, the same code serving runs) and says
where a word begins. It learns the corpus conventions jieba misses: person names as surname + given name,
unknown words jieba cuts into single characters, numbers with their units, dates.

jieba's features for the training sentences are jackknifed: each fold is segmented with a dictionary built from
the other folds, so the model sees jieba on text whose words it may not know, as on new text. Dev is segmented
with the full corpus dictionary, as in serving.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from senpos.pos import vocab_digest
from senpos.runtime import make_session
from senpos.text.chinese import JIEBA_PLACES, Segmenter, boundary_features, spans_from_starts, word_offsets
from senpos.text.vocab import Vocab
from training.common import Selection, make_batches, seed_everything
from training.pos.data import Sentence, load_sentences
from training.pos.evaluate import span_f1
from training.pos.model import BoundaryConfig, BoundaryModel
from training.pos.optimize import quantize_corrector
from training.pos.prepare import write_jieba_dict

log = logging.getLogger(__name__)
PARITY_TOL = 1e-4
CALIBRATION_TEXTS = 2000  # training texts that set the int8 corrector's scales


@dataclass
class SegmenterConfig:
    train: str
    dev: str
    folds: int = 5  # jackknife folds for jieba's features on the training sentences
    min_char_freq: int = 2
    min_bigram_freq: int = 2
    char_dim: int = 64
    bigram_dim: int = 64
    place_dim: int = 16
    encoder: str = "cnn"  # or "lstm"
    hidden: int = 128
    layers: int = 3  # CNN layers
    width: int = 5  # CNN window
    dropout: float = 0.2
    max_chars: int = 300  # training windows (serving windows longer texts the same way)
    batch_size: int = 128
    lr: float = 2e-3
    epochs: int = 8
    patience: int = 2
    lr_decay: float = 0.5
    seed: int = 13
    threads: int = 2
    max_train: int = 0
    time_budget_s: float = 0.0
    init_from: str = ""  # a segmenter.pt to continue from (same data, so the same vocabularies), at a lower lr say


Example = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # char ids, bigram ids, jieba places, starts


def text_and_starts(s: Sentence) -> tuple[str, np.ndarray]:
    text = "".join(s.words)
    starts = np.zeros(len(text), np.float32)
    starts[[a for a, _ in word_offsets(list(s.words))]] = 1.0
    return text, starts


def jackknife_spans(sentences: list[Sentence], folds: int) -> list[list[tuple[int, int]]]:
    """jieba's words for each sentence, from a dictionary that never saw the sentence's fold (contiguous folds,
    so an article's sentences mostly share one)."""
    out: list[list[tuple[int, int]]] = [[] for _ in sentences]
    n = len(sentences)
    fold_of = [i * folds // n for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(folds):
            path = Path(tmp) / f"fold{k}.txt"
            write_jieba_dict([s for s, f in zip(sentences, fold_of, strict=True) if f != k], path)
            seg = Segmenter(path)
            for i in (i for i in range(n) if fold_of[i] == k):
                out[i] = seg.spans("".join(sentences[i].words))
            log.info("jackknife fold %d/%d done", k + 1, folds)
    return out


def encode(texts: list[str], spans: list[list[tuple[int, int]]], chars: Vocab, bigrams: Vocab
           ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for text, sp in zip(texts, spans, strict=True):
        keys, bis, places = boundary_features(text, sp)
        out.append((np.asarray(chars.encode(keys), np.int64), np.asarray(bigrams.encode(bis), np.int64),
                    np.asarray(places, np.int64)))
    return out


def collate(batch: list[Example]) -> tuple[torch.Tensor, ...]:
    lengths = torch.tensor([len(c) for c, *_ in batch], dtype=torch.int64)
    t = int(lengths.max())
    arrays = [torch.zeros(len(batch), t, dtype=torch.int64) for _ in range(3)]
    starts = torch.full((len(batch), t), -1.0)
    for i, ex in enumerate(batch):
        for a, x in zip(arrays, ex[:3], strict=True):
            a[i, : len(x)] = torch.from_numpy(x)
        starts[i, : len(ex[3])] = torch.from_numpy(ex[3])
    return (*arrays, lengths, starts)


@torch.no_grad()
def predict_starts(model: BoundaryModel, examples: list[Example], batch_size: int = 64) -> list[np.ndarray]:
    model.eval()
    out: list[np.ndarray] = [np.zeros(0)] * len(examples)
    for batch in make_batches([len(e[0]) for e in examples], batch_size, rng=None):
        chars, bigrams, places, lengths, _ = collate([examples[i] for i in batch])
        scores = model(chars, bigrams, places, lengths).numpy()
        for row, i in enumerate(batch):
            out[i] = scores[row, : len(examples[i][0])] > 0
    return out


def dev_f1(model: BoundaryModel, examples: list[Example], texts: list[str]) -> float:
    gold = [set(spans_from_starts(t, e[3])) for t, e in zip(texts, examples, strict=True)]
    pred = [set(spans_from_starts(t, p)) for t, p in zip(texts, predict_starts(model, examples), strict=True)]
    return span_f1(gold, pred)


def train_segmenter(cfg: SegmenterConfig, run_dir: Path) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads)
    train, dev = load_sentences(cfg.train), load_sentences(cfg.dev)
    train = train[: cfg.max_train or None]
    train_texts, dev_texts = ["".join(s.words) for s in train], ["".join(s.words) for s in dev]
    train_spans = jackknife_spans(train, cfg.folds)
    with tempfile.TemporaryDirectory() as tmp:
        write_jieba_dict(train, Path(tmp) / "dict.txt")
        full = Segmenter(Path(tmp) / "dict.txt")
        dev_spans = [full.spans(t) for t in dev_texts]
    jieba_dev = span_f1([set(word_offsets(list(s.words))) for s in dev], [set(s) for s in dev_spans])
    log.info("jieba alone, dev seg F1 %.4f", jieba_dev)
    feats = [boundary_features(t, s) for t, s in zip(train_texts, train_spans, strict=True)]
    chars = Vocab.build((f[0] for f in feats), cfg.min_char_freq, 10**7)
    bigrams = Vocab.build((f[1] for f in feats), cfg.min_bigram_freq, 10**7)
    log.info("%d character keys, %d bigram keys", len(chars), len(bigrams))
    chars.save(run_dir / "seg_chars.json")
    bigrams.save(run_dir / "seg_bigrams.json")

    def examples(texts, spans, sents):
        return [(*x, text_and_starts(s)[1]) for x, s in zip(encode(texts, spans, chars, bigrams), sents, strict=True)]

    train_ex = [tuple(a[i : i + cfg.max_chars] for a in ex) for ex in examples(train_texts, train_spans, train)
                for i in range(0, len(ex[0]), cfg.max_chars)]
    dev_ex = examples(dev_texts, dev_spans, dev)
    mcfg = BoundaryConfig(n_chars=len(chars), n_bigrams=len(bigrams), n_places=len(JIEBA_PLACES),
                          char_dim=cfg.char_dim, bigram_dim=cfg.bigram_dim, place_dim=cfg.place_dim,
                          encoder=cfg.encoder, hidden=cfg.hidden, layers=cfg.layers, width=cfg.width,
                          dropout=cfg.dropout)
    model = BoundaryModel(mcfg)
    if cfg.init_from:
        model.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=True)["state_dict"])
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%d parameters, %d train windows, %d dev sentences", n_params, len(train_ex), len(dev_ex))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    rng = random.Random(cfg.seed)
    history = []
    selection = Selection(run_dir / "segmenter.pt", cfg.patience, restore=True, lr_decay=cfg.lr_decay,
                          budget_s=cfg.time_budget_s)
    for epoch in range(1, cfg.epochs + 1):
        if selection.out_of_time(epoch):
            break
        model.train()
        t0, total, seen = time.time(), 0.0, 0
        batches = make_batches([len(e[0]) for e in train_ex], cfg.batch_size, rng)
        for k, batch in enumerate(batches):
            chars_t, bigrams_t, places_t, lengths, starts = collate([train_ex[i] for i in batch])
            scores = model(chars_t, bigrams_t, places_t, lengths)
            mask = starts >= 0
            loss = loss_fn(scores[mask], starts[mask])
            opt.zero_grad(set_to_none=True)
            (loss / mask.sum()).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.item()
            seen += int(mask.sum())
            if k % 50 == 0:
                log.info("epoch %d batch %d/%d loss %.4f (%.0fs)", epoch, k, len(batches), total / max(seen, 1),
                         time.time() - t0)
        f1 = dev_f1(model, dev_ex, dev_texts)
        history.append({"epoch": epoch, "train_loss": total / seen, "dev_seg_f1": f1,
                        "seconds": round(time.time() - t0)})
        log.info("epoch %d: train loss %.4f, dev seg F1 %.4f (%.0fs)", epoch, total / seen, f1, time.time() - t0)
        if selection.update(f1, {"model_config": asdict(mcfg), "config": asdict(cfg),
                                 "state_dict": model.state_dict()}, model, opt):
            break
    metrics = {"dev_seg_f1": selection.best, "jieba_dev_seg_f1": jieba_dev, "parameters": n_params,
               "config": asdict(cfg), "history": history}
    (run_dir / "segmenter_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def load_segmenter(run_dir: Path) -> BoundaryModel:
    ckpt = torch.load(run_dir / "segmenter.pt", map_location="cpu", weights_only=True)
    model = BoundaryModel(BoundaryConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def _random_batch(rng: np.random.Generator, cfg: BoundaryConfig, lengths: list[int]) -> tuple[np.ndarray, ...]:
    shape = (len(lengths), max(lengths))
    arrays = [np.zeros(shape, np.int64) for _ in range(3)]
    for i, n in enumerate(lengths):
        for a, high in zip(arrays, (cfg.n_chars, cfg.n_bigrams, cfg.n_places), strict=True):
            a[i, :n] = rng.integers(1, high, n)
    return (*arrays, np.asarray(lengths, np.int64))


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 with a float scale per row (a quarter of float32's size), looked up and
    widened. The PyTorch model gets the same rounding, so the parity check stays exact."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        scale = weight.detach().abs().max(dim=1).values.clamp(min=1e-12) / 127
        self.register_buffer("table", torch.round(weight.detach() / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids].float() * self.scale[ids].unsqueeze(-1)


def shrink_bigrams(model: BoundaryModel, bigrams: Vocab, train: str, min_count: int) -> Vocab:
    """Keep the bigrams seen at least `min_count` times in `train` (the rest read as <unk>, which the model learnt
    from the bigrams too rare for its vocabulary), and store their table as int8: the directory stays small."""
    counts: Counter[str] = Counter()
    for s in load_sentences(train):
        counts.update(boundary_features("".join(s.words), [])[1])
    keep = [i for i, b in enumerate(bigrams.itos) if i < 2 or counts[b] >= min_count]
    weight = model.bigram_embedding.weight.detach()[keep]
    model.bigram_embedding = Int8Embedding(weight)
    model.cfg.n_bigrams = len(keep)
    log.info("bigrams: %d of %d kept (seen >= %d times), int8 table", len(keep), len(bigrams), min_count)
    return Vocab([bigrams.itos[i] for i in keep])


def export_segmenter(run_dir: Path, out_dir: Path, min_bigram_count: int = 0) -> float:
    """segmenter.onnx (int8: training/pos/optimize.py) + seg_chars.json + seg_bigrams.json into a model directory;
    returns the float export's parity (max abs diff).
    min_bigram_count > 0: keep only bigrams seen that often in training, in an int8 table (shrink_bigrams)."""
    model = load_segmenter(run_dir)
    chars, bigrams = Vocab.load(run_dir / "seg_chars.json"), Vocab.load(run_dir / "seg_bigrams.json")
    ckpt = torch.load(run_dir / "segmenter.pt", map_location="cpu", weights_only=True)
    if min_bigram_count:
        bigrams = shrink_bigrams(model, bigrams, ckpt["config"]["train"], min_bigram_count)
    path = out_dir / "segmenter.onnx"
    example = tuple(map(torch.from_numpy, _random_batch(np.random.default_rng(0), model.cfg, [5, 2])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=17,
                          input_names=["chars", "bigrams", "places", "lengths"], output_names=["starts"],
                          dynamic_axes={"chars": {0: "batch", 1: "time"}, "bigrams": {0: "batch", 1: "time"},
                                        "places": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                        "starts": {0: "batch", 1: "time"}})
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="vocab_sha256", value=vocab_digest(chars, bigrams))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    session = make_session(path, threads=1, want="cpu")
    rng, worst = np.random.default_rng(1), 0.0
    for batch, max_len in ((1, 3), (1, 300), (4, 40), (32, 300)):
        arrays = _random_batch(rng, model.cfg, [int(x) for x in rng.integers(1, max_len + 1, batch)])
        with torch.no_grad():
            expected = model(*map(torch.from_numpy, arrays)).numpy()
        got = session.run(None, dict(zip(("chars", "bigrams", "places", "lengths"), arrays, strict=True)))[0]
        mask = np.arange(arrays[0].shape[1])[None, :] < arrays[3][:, None]
        worst = max(worst, float(np.abs(expected - got)[mask].max()))
    if worst > PARITY_TOL:
        raise AssertionError(f"onnxruntime differs from PyTorch by {worst:.2e} (> {PARITY_TOL})")
    chars.save(out_dir / "seg_chars.json")
    bigrams.save(out_dir / "seg_bigrams.json")
    config_path = out_dir / "config.json"  # the tagger's config says a corrector ships and how it was made
    config = json.loads(config_path.read_text())
    config["segmentation"]["corrector"] = {
        "files": ["segmenter.onnx", "seg_chars.json", "seg_bigrams.json"], "model": asdict(model.cfg),
        "train_config": ckpt["config"], "parity_max_abs_diff": worst,
        "bigrams": {"min_count": min_bigram_count, "kept": len(bigrams), "table": "int8, a scale per row"}
        if min_bigram_count else {"kept": len(bigrams), "table": "float32"},
        "onnx": {"inputs": ["chars (batch, time) int64", "bigrams (batch, time) int64", "places (batch, time) int64",
                            "lengths (batch,) int64"], "output": "starts (batch, time): > 0 where a word begins"}}
    config_path.write_text(json.dumps(config, indent=2))
    metrics = run_dir / "segmenter_metrics.json"
    if metrics.exists():
        shutil.copy(metrics, out_dir / "segmenter_metrics.json")
    texts = ["".join(s.words) for s in load_sentences(ckpt["config"]["train"])[:CALIBRATION_TEXTS]]
    quantize_corrector(out_dir, texts)
    log.info("exported %s (parity %.2e), int8 on %d calibration texts", path, worst, len(texts))
    return worst
