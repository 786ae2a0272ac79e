"""Step 2 of 3: train the tagger on a prepared directory; keep the best checkpoint by dev token accuracy.

Needs only torch and numpy (plus matplotlib for the curves), so it runs wherever PyTorch does.
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

from training.common import Selection, make_batches, pick_device, plot_curves, seed_everything
from training.pos.model import Tagger, TaggerConfig
from training.pos.prepare import load_prepared

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    hidden: int = 200
    layers: int = 1
    char_dim: int = 50
    char_filters: int = 100
    lex_dim: int = 16  # 0 = no lexicon feature
    dropout: float = 0.33
    word_dropout: float = 0.05  # replace known words by <unk> at this rate so <unk> learns from characters
    max_words: int = 150  # training windows; serving windows longer inputs the same way
    batch_size: int = 32
    lr: float = 2e-3
    clip: float = 5.0
    epochs: int = 12
    patience: int = 2
    seed: int = 13
    device: str = "auto"
    max_train: int = 0
    time_budget_s: float = 0.0
    loader_workers: int = 0  # >0: build batches in that many processes (worth it on a GPU machine)
    lr_decay: float = 0.5  # on an epoch without dev gain: go back to the best weights, lr *= lr_decay
    init_from: str = ""  # a checkpoint.pt to start from (fine-tuning at a lower lr, say)
    teacher: str = ""  # a model directory (same vocabularies) to distil from: its model.onnx's tag scores are soft
    # targets, and its embeddings (words, character CNN, lexicon) initialise the student's
    distill: float = 0.7  # with a teacher: loss = (1 - distill) * cross-entropy + distill * T^2 * KL(teacher||student)
    temperature: float = 2.0
    freeze_embeddings: bool = False  # keep the (teacher's) word, character and lexicon embeddings fixed: fewer
    # parameters to update per step, the BiLSTM learns on features already fine-tuned
    threads: int = 0  # torch threads (0: torch's default)


Example = tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]  # words, chars, lexicon ids, tags


def windows(sents: list[Example], max_words: int) -> list[Example]:
    out = []
    for w, c, lx, t in sents:
        for a in range(0, len(w), max_words):
            out.append((w[a : a + max_words], c[a : a + max_words], lx[a : a + max_words], t[a : a + max_words]))
    return out


def collate(batch: list[Example], device: torch.device, word_dropout: float = 0.0, rng=None):
    lengths = torch.tensor([len(w) for w, *_ in batch], dtype=torch.int64)
    max_chars = max(len(ch) for _, c, *_ in batch for ch in c)
    words = torch.zeros(len(batch), int(lengths.max()), dtype=torch.int64)
    chars = torch.zeros(len(batch), int(lengths.max()), max_chars, dtype=torch.int64)
    tags = torch.full((len(batch), int(lengths.max())), -100, dtype=torch.int64)
    lex = torch.zeros(len(batch), int(lengths.max()), dtype=torch.int64)
    for i, (w, c, lx, t) in enumerate(batch):
        w = torch.from_numpy(w)
        if word_dropout and rng is not None:
            w = torch.where(torch.from_numpy(rng.random(len(w)) < word_dropout), torch.ones_like(w), w)
        words[i, : len(w)] = w
        tags[i, : len(t)] = torch.from_numpy(t)
        lex[i, : len(lx)] = torch.from_numpy(lx)
        for j, ch in enumerate(c):
            chars[i, j, : len(ch)] = torch.from_numpy(ch)
    return words.to(device), chars.to(device), lex.to(device), lengths.to(device), tags.to(device)


class Batches(torch.utils.data.Dataset):
    """One epoch's batches, built (collated) on demand, possibly in DataLoader worker processes."""

    def __init__(self, examples: list[Example], batches: list[list[int]], word_dropout: float, seed: int):
        self.examples, self.batches, self.word_dropout, self.seed = examples, batches, word_dropout, seed

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int):
        rng = np.random.default_rng([self.seed, k])  # word dropout is reproducible whoever builds the batch
        return collate([self.examples[i] for i in self.batches[k]], torch.device("cpu"), self.word_dropout, rng)


def teacher_scores(model_dir: Path, examples: list[Example], batch_size: int = 64) -> list[np.ndarray]:
    """The teacher's float32 tag scores (words x tags, stored float16) for each training window, through
    onnxruntime."""
    from senpos.pos import PosTagger

    teacher = PosTagger(model_dir, threads=torch.get_num_threads(), provider="cpu", precision="float")
    out: list[np.ndarray] = [np.zeros(0)] * len(examples)
    for batch in make_batches([len(e[0]) for e in examples], batch_size, rng=None):
        words, chars, lex, lengths, _ = collate([examples[i] for i in batch], torch.device("cpu"))
        scores = teacher.scores_batch(words.numpy(), chars.numpy(), lex.numpy(), lengths.numpy())
        for row, i in enumerate(batch):
            out[i] = scores[row, : len(examples[i][0])].astype(np.float16)
    return out


def init_from_teacher(model: Tagger, model_dir: Path) -> list[str]:
    """Copy the teacher's embeddings and character CNN (features.onnx initializers of the same name and shape)."""
    import onnx
    from onnx import numpy_helper

    params = dict(model.named_parameters())
    copied = []
    for init in onnx.load(str(Path(model_dir) / "features.onnx")).graph.initializer:
        if init.name in params and tuple(init.dims) == tuple(params[init.name].shape):
            params[init.name].data.copy_(torch.from_numpy(numpy_helper.to_array(init).astype(np.float32)))
            copied.append(init.name)
    return copied


@torch.no_grad()
def evaluate(model: Tagger, sents: list[Example], device: torch.device, batch_size: int = 128) -> tuple[float, float]:
    """(token accuracy, mean loss) on `sents` (already windowed)."""
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for batch in make_batches([len(s[0]) for s in sents], batch_size, rng=None):
        words, chars, lex, lengths, tags = collate([sents[i] for i in batch], device)
        scores = model(words, chars, lex, lengths)
        mask = tags != -100
        correct += int((scores.argmax(-1) == tags)[mask].sum())
        total += int(mask.sum())
        loss_sum += float(nn.functional.cross_entropy(scores[mask], tags[mask], reduction="sum"))
    return correct / total, loss_sum / total


def distillation_loss(scores: torch.Tensor, teacher: list[np.ndarray], mask: torch.Tensor, temperature: float
                      ) -> torch.Tensor:
    """T^2 * KL(teacher || student) at temperature T, averaged over the real words."""
    target = torch.zeros_like(scores)
    for i, t in enumerate(teacher):
        target[i, : len(t)] = torch.from_numpy(t.astype(np.float32))
    log_student = torch.log_softmax(scores[mask] / temperature, -1)
    log_teacher = torch.log_softmax(target[mask] / temperature, -1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1).mean()
    return kl * temperature**2


def train(prepared_dir: Path, run_dir: Path, cfg: TrainConfig) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    data = load_prepared(prepared_dir)
    train_set = windows(data["train"][: cfg.max_train or None], cfg.max_words)
    dev_set = windows(data["dev"], cfg.max_words)
    emb = torch.from_numpy(data["embeddings"])
    mcfg = TaggerConfig(n_words=emb.shape[0], n_chars=data["n_chars"], n_tags=len(data["tags"]), word_dim=emb.shape[1],
                        char_dim=cfg.char_dim, char_filters=cfg.char_filters, hidden=cfg.hidden, layers=cfg.layers,
                        dropout=cfg.dropout, n_lex=len(data["lexicon_tags"]) if cfg.lex_dim else 0,
                        lex_dim=cfg.lex_dim)
    model = Tagger(mcfg)
    model.word_embedding.weight.data.copy_(emb)
    if cfg.init_from:
        model.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=True)["state_dict"])
    soft: list[np.ndarray] = []
    if cfg.teacher:
        log.info("initialised from the teacher: %s", ", ".join(init_from_teacher(model, Path(cfg.teacher))))
        soft = teacher_scores(Path(cfg.teacher), train_set)
        log.info("teacher scores for %d windows", len(soft))
    if cfg.freeze_embeddings:
        for module in (model.word_embedding, model.chars, model.lex_embedding):
            if module is not None:
                module.requires_grad_(False)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("device %s, %d parameters, %d train / %d dev windows", device, n_params, len(train_set), len(dev_set))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    rng = random.Random(cfg.seed)
    history = []
    selection = Selection(run_dir / "checkpoint.pt", cfg.patience, restore=cfg.lr_decay < 1.0,
                          lr_decay=cfg.lr_decay, budget_s=cfg.time_budget_s)
    for epoch in range(1, cfg.epochs + 1):
        if selection.out_of_time(epoch):
            break
        model.train()
        t0, total, seen = time.time(), 0.0, 0
        batches = Batches(train_set, make_batches([len(s[0]) for s in train_set], cfg.batch_size, rng),
                          cfg.word_dropout, seed=cfg.seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=cfg.loader_workers)
        for k, batch in enumerate(tqdm(loader, desc=f"epoch {epoch}", leave=False, mininterval=5)):
            words, chars, lex, lengths, tags = (t.to(device, non_blocking=True) for t in batch)
            scores = model(words, chars, lex, lengths)
            loss = loss_fn(scores.reshape(-1, scores.size(-1)), tags.reshape(-1))
            if soft:
                loss = (1 - cfg.distill) * loss + cfg.distill * distillation_loss(
                    scores, [soft[i] for i in batches.batches[k]], tags != -100, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            n = int((tags != -100).sum())
            total += loss.item() * n
            seen += n
        acc, dev_loss = evaluate(model, dev_set, device)
        history.append({"epoch": epoch, "train_loss": total / seen, "val_loss": dev_loss, "dev_accuracy": acc,
                        "seconds": round(time.time() - t0, 1)})
        log.info("epoch %d: train loss %.4f, dev loss %.4f, dev token acc %.4f (%.0fs)", epoch, total / seen, dev_loss,
                 acc, time.time() - t0)
        if selection.update(acc, {"model_config": asdict(mcfg), "train_config": asdict(cfg), "tags": data["tags"],
                                  "lexicon_tags": data["lexicon_tags"], "state_dict": model.state_dict()},
                            model, opt):
            break
    best_epoch = max(history, key=lambda h: h["dev_accuracy"])
    metrics = {"dev_token_accuracy": best_epoch["dev_accuracy"], "best_epoch": best_epoch["epoch"],
               "parameters": n_params, "device": str(device), "config": asdict(cfg), "history": history}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_curves(history, run_dir / "training_curves.png", "dev_accuracy", "token accuracy")
    return metrics
