"""Self-training: a teacher model scores the unlabelled reviews; its P(positive) become soft targets.

    python -m training.sentiment.pseudo_label --teacher runs/sentiment/teacher_model --prepared runs/sentiment/prepared

The teacher is an exported model directory (a first wide & deep stack: it reads each review whole, with both
branches, better than the BiLSTM it will teach). The reviews are encoded with the prepared vocabulary, so the
student trains on the same ids as the labelled reviews; `unsup.npz` (or `--name`) lands in the prepared directory.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from senpos.sentiment import SentimentPredictor
from senpos.text.english import tokenize_many
from senpos.text.vocab import Vocab
from training.sentiment.data import load_reviews
from training.sentiment.prepare import MAX_STORED_TOKENS, pack, unpack

log = logging.getLogger(__name__)


def pseudo_label(teacher: Path, prepared_dir: Path, unsup: str, name: str = "unsup.npz") -> Path:
    reviews = load_reviews(unsup, split="unsup", include_unlabelled=True)
    texts = [r.text for r in reviews]
    log.info("teacher %s scores %d unlabelled reviews", teacher, len(texts))
    probs = SentimentPredictor(teacher).predict(texts)
    vocab = Vocab.load(prepared_dir / "vocab.json")
    flat, offsets = pack([vocab.encode(t[:MAX_STORED_TOKENS]) for t in tokenize_many(texts)])
    out = prepared_dir / name
    np.savez_compressed(out, ids=flat, offsets=offsets, soft=probs.astype(np.float32))
    log.info("wrote %s (mean P(positive) %.3f, %.1f%% above 0.9 or below 0.1)", out, probs.mean(),
             100 * np.mean((probs > 0.9) | (probs < 0.1)))
    return out


def load_pseudo_labelled(prepared_dir: Path, name: str = "unsup.npz") -> tuple[list[np.ndarray], np.ndarray]:
    with np.load(prepared_dir / name) as z:
        return unpack(z["ids"], z["offsets"]), z["soft"].astype(np.float64)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True, help="an exported model directory")
    parser.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    parser.add_argument("--unsup", default=None, help="unlabelled reviews (default: prepare.json's)")
    parser.add_argument("--name", default="unsup.npz", help="file written in the prepared directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import json

    unsup = args.unsup or json.loads((args.prepared / "prepare.json").read_text())["unsup"]
    pseudo_label(args.teacher, args.prepared, unsup, args.name)
