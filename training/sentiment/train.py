"""Step 2 of 3: train the BiLSTM on a prepared directory; keep the best checkpoint by validation accuracy.

Needs only torch and numpy (plus matplotlib for the curves), so it runs wherever PyTorch does, GPU or CPU.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from senpos.text.english import truncate
from senpos.text.vocab import Vocab
from training.common import Selection, make_batches, pick_device, plot_curves, seed_everything
from training.sentiment.model import ModelConfig, SentimentBiLSTM
from training.sentiment.prepare import load_prepared
from training.sentiment.pseudo_label import load_pseudo_labelled
from training.sentiment.short_inputs import (
    SHORT_EVAL,
    encode_short_texts,
    load_short_texts,
    random_crop,
    sentence_end_ids,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    max_tokens: int = 400
    head_tokens: int = 100  # head+tail truncation: first 100 and last 300 tokens of a long review
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.5
    pooling: str = "concat"
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip: float = 5.0
    epochs: int = 10
    patience: int = 2
    seed: int = 13
    device: str = "auto"
    max_train: int = 0  # 0 = all; a small number makes a seconds-long smoke run
    time_budget_s: float = 0.0  # 0 = none; otherwise no new epoch starts after this many seconds
    init: str = ""  # a run directory whose checkpoint.pt starts the weights (e.g. to go on at a lower lr)
    crops: int = 0  # sentence crops (short_inputs.random_crop) per fit review per epoch, each with its review's label
    crop_sentences: int = 3
    crop_tokens: int = 64
    short_texts: str = ""  # a hand-written short-text set to train on as well (short_inputs.SHORT_TEXTS/<name>.jsonl)
    short_repeat: int = 3  # times each short text is seen per epoch
    threads: int = 0  # torch CPU threads (0 = its default, all cores)
    unsup_per_epoch: int = 0  # unlabelled reviews (a fresh sample each epoch) with a teacher's soft targets
    pseudo_labels: str = "unsup.npz"  # where pseudo_label.py wrote them, in the prepared directory
    adversarial: float = 0.0  # 0 = off; else each batch also learns from adversarial_embeddings(..., epsilon)
    select_short: bool = False  # pick the epoch by the mean of select-review and short-select accuracy (the ship rule)


def collate(seqs: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([max(1, len(s)) for s in seqs], dtype=torch.int64)
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.from_numpy(s.astype(np.int64)) if len(s) else 1  # empty -> one <unk>
    return ids.to(device), lengths.to(device)


def adversarial_embeddings(embedded: torch.Tensor, grad: torch.Tensor, epsilon: float,
                           word_norm: float) -> torch.Tensor:
    """Each text's embeddings moved by `epsilon` typical word vectors' length along its loss gradient
    (Miyato et al. 2016, without their embedding normalisation: the step is in units of a word vector)."""
    norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)
    return embedded + (epsilon * word_norm) * grad / norm


@torch.no_grad()
def predict(model: SentimentBiLSTM, seqs: list[np.ndarray], device: torch.device, batch_size: int = 256) -> np.ndarray:
    model.eval()
    probs = np.zeros(len(seqs), dtype=np.float64)
    for batch in make_batches([len(s) for s in seqs], batch_size, rng=None):
        ids, lengths = collate([seqs[i] for i in batch], device)
        probs[batch] = model(ids, lengths).float().cpu().numpy()
    return probs


def train(prepared_dir: Path, run_dir: Path, cfg: TrainConfig) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    data = load_prepared(prepared_dir)

    def cut(seqs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(truncate(list(s), cfg.max_tokens, cfg.head_tokens), dtype=np.int64) for s in seqs]

    train_x, train_y = data["train"]
    if cfg.max_train:
        train_x, train_y = train_x[: cfg.max_train], train_y[: cfg.max_train]
    full_x = train_x  # crops come from whole reviews, not from the head + tail that truncation keeps
    train_x, val_x, val_y = cut(train_x), cut(data["val"][0]), data["val"][1]
    emb = torch.from_numpy(data["embeddings"])
    mcfg = ModelConfig(vocab_size=emb.shape[0], embed_dim=emb.shape[1], hidden=cfg.hidden, layers=cfg.layers,
                       dropout=cfg.dropout, pooling=cfg.pooling)
    model = SentimentBiLSTM(mcfg)
    model.embedding.weight.data.copy_(emb)
    if cfg.init:
        ckpt = torch.load(Path(cfg.init) / "checkpoint.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
        log.info("weights from %s", cfg.init)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("device %s, %d parameters, %d train / %d val reviews", device, n_params, len(train_x), len(val_x))

    vocab = Vocab.load(prepared_dir / "vocab.json")
    ends = sentence_end_ids(vocab)
    short_x, short_y = encode_short_texts(load_short_texts(cfg.short_texts), vocab) if cfg.short_texts else ([], [])
    unsup_x, unsup_y = ([], np.zeros(0))
    if cfg.unsup_per_epoch:
        unsup_x, unsup_y = load_pseudo_labelled(prepared_dir, cfg.pseudo_labels)

    def epoch_examples(rng: random.Random) -> tuple[list[np.ndarray], np.ndarray]:
        """Every fit review, `crops` crops of each, the short texts `short_repeat` times, and a sample of the
        pseudo-labelled reviews."""
        xs, ys = list(train_x), [train_y]
        for _ in range(cfg.crops):
            xs += [random_crop(s, ends, rng, cfg.crop_sentences, cfg.crop_tokens) for s in full_x]
            ys.append(train_y)
        for _ in range(cfg.short_repeat if len(short_x) else 0):
            xs += short_x
            ys.append(short_y)
        if cfg.unsup_per_epoch:
            pick = rng.sample(range(len(unsup_x)), min(cfg.unsup_per_epoch, len(unsup_x)))
            xs += cut([unsup_x[i] for i in pick])
            ys.append(unsup_y[pick])
        return xs, np.concatenate(ys)

    def short_select_accuracy() -> float | None:
        """Watched; selected on as well with `select_short`."""
        rows = [r for r in load_short_texts("eval") if r.get("part") == "select"] if SHORT_EVAL.exists() else []
        if not rows:
            return None
        x, y = encode_short_texts(rows, vocab)
        return float(np.mean((predict(model, x, device) >= 0.5) == y))

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    word_norm = float(emb.norm(dim=1).mean())
    rng = random.Random(cfg.seed)
    history = []
    selection = Selection(run_dir / "checkpoint.pt", cfg.patience, budget_s=cfg.time_budget_s)
    for epoch in range(1, cfg.epochs + 1):
        if selection.out_of_time(epoch):
            break
        model.train()
        t0, total, seen = time.time(), 0.0, 0
        epoch_x, epoch_y = epoch_examples(rng)
        batches = make_batches([len(s) for s in epoch_x], cfg.batch_size, rng)
        for batch in tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=5):
            ids, lengths = collate([epoch_x[i] for i in batch], device)
            target = torch.tensor(epoch_y[batch], dtype=torch.float32, device=device)
            if cfg.adversarial:
                embedded = model.embedding(ids)
                loss = loss_fn(model.logits(ids, lengths, embedded), target)
                grad, = torch.autograd.grad(loss, embedded, retain_graph=True)
                moved = adversarial_embeddings(embedded, grad.detach(), cfg.adversarial, word_norm)
                loss = loss + loss_fn(model.logits(ids, lengths, moved), target)
            else:
                loss = loss_fn(model.logits(ids, lengths), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            total += loss.item() * len(batch)
            seen += len(batch)
        probs = predict(model, val_x, device)
        val_loss = float(-np.mean(val_y * np.log(probs + 1e-9) + (1 - val_y) * np.log(1 - probs + 1e-9)))
        val_acc = float(np.mean((probs >= 0.5) == val_y))
        history.append({"epoch": epoch, "train_loss": total / seen, "val_loss": val_loss, "val_accuracy": val_acc,
                        "seconds": round(time.time() - t0, 1)})
        history[-1]["short_select_accuracy"] = short_select_accuracy()
        log.info("epoch %d: train loss %.4f, val loss %.4f, val acc %.4f, short texts %s (%.0fs)", epoch,
                 total / seen, val_loss, val_acc, history[-1].get("short_select_accuracy"), time.time() - t0)
        short = history[-1]["short_select_accuracy"]
        history[-1]["selection_score"] = (val_acc + short) / 2 if cfg.select_short and short is not None else val_acc
        if selection.update(history[-1]["selection_score"], {"model_config": asdict(mcfg), "train_config": asdict(cfg),
                                                             "state_dict": model.state_dict()}, model, opt):
            break
    best_epoch = max(history, key=lambda h: h["selection_score"])
    metrics = {"val_accuracy": best_epoch["val_accuracy"], "best_epoch": best_epoch["epoch"],
               "parameters": n_params, "device": str(device), "train_reviews": len(train_x),
               "val_reviews": len(val_x), "config": asdict(cfg), "history": history}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_curves(history, run_dir / "training_curves.png", "val_accuracy", "accuracy")
    return metrics
