"""Training helpers shared by the sentiment and POS pipelines: seeding, length-bucketed batches, model selection,
curves."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Length-bucketed batches: similar lengths together so little padding is computed.

    With an rng the order is shuffled (training); without, it is deterministic (evaluation).
    """
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def plot_curves(history: list[dict], path: Path, metric: str, metric_label: str) -> None:
    """Loss (train and validation) and the validation metric per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    a.legend()
    b.plot(epochs, [h[metric] for h in history], "o-", color="C2")
    b.set(xlabel="epoch", ylabel=metric_label, title=f"validation {metric_label}")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class Selection:
    """Keeps the checkpoint that scores best on the selection split, at `path`. `update` says when to stop: after
    `patience` epochs without a gain; with `restore`, an epoch without a gain first goes back to the best weights
    and multiplies the learning rate by `lr_decay`. `out_of_time` stops before an epoch once `budget_s` is spent."""

    def __init__(self, path: Path, patience: int, restore: bool = False, lr_decay: float = 1.0,
                 budget_s: float = 0.0):
        self.path, self.patience, self.restore, self.lr_decay = path, patience, restore, lr_decay
        self.budget_s = budget_s
        self.best, self.bad, self.started = -1.0, 0, time.time()

    def out_of_time(self, epoch: int) -> bool:
        if self.budget_s and time.time() - self.started > self.budget_s:
            log.info("time budget of %.0fs spent: stopping before epoch %d", self.budget_s, epoch)
            return True
        return False

    def update(self, score: float, checkpoint: dict, model: torch.nn.Module, opt: torch.optim.Optimizer) -> bool:
        """Record an epoch's selection score (higher is better); True when training should stop."""
        if score > self.best:
            self.best, self.bad = score, 0
            torch.save(checkpoint, self.path)
            return False
        self.bad += 1
        if self.bad >= self.patience:
            log.info("early stop: no gain on the selection split for %d epochs", self.patience)
            return True
        if self.restore:  # back to the best weights, smaller steps
            model.load_state_dict(torch.load(self.path, map_location=next(model.parameters()).device,
                                             weights_only=True)["state_dict"])
            for group in opt.param_groups:
                group["lr"] *= self.lr_decay
            log.info("no gain: best weights restored, lr now %.2e", opt.param_groups[0]["lr"])
        return False


Step = tuple[str, Path | None, Callable[[], object]]  # (name, the file that says it is done or None, run it)


def run_steps(steps: Sequence[Step], runs: Path) -> dict:
    """A recipe's steps in order, skipping each whose done-file exists, so that an interrupted recipe resumes at
    the step it was in; each step's wall-clock seconds go to `runs/ship.json` (returned)."""
    timings_file = runs / "ship.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    for name, done, step in steps:
        if done is not None and done.exists():
            log.info("ship: %s already done (%s)", name, done)
            continue
        t0 = time.time()
        log.info("ship: %s", name)
        step()
        timings[name] = round(time.time() - t0, 1)
        runs.mkdir(parents=True, exist_ok=True)
        timings_file.write_text(json.dumps(timings, indent=2))
    return timings
