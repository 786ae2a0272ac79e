"""Choose the decoding of an exported tagger on dev: plain argmax, or Viterbi with tag bigrams counted on the
training corpus at a weight from a grid. Writes tag_bigrams.json into the model directory only if it beats
argmax on dev token accuracy (gold segmentation) by at least MIN_GAIN.

    python -m training.pos.decoding --model models/pos
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from senpos.pos import PosTagger
from senpos.viterbi import TagBigrams
from training.pos.__main__ import DEFAULT_DATA
from training.pos.data import load_sentences
from training.pos.prepare import clean_tags

WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
MIN_GAIN = 0.0005  # Viterbi must beat argmax by 0.05 points of dev accuracy to be worth shipping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/pos"))
    parser.add_argument("--train", default=str(DEFAULT_DATA / "train.jsonl.gz"))
    parser.add_argument("--dev", default=str(DEFAULT_DATA / "dev.jsonl.gz"))
    args = parser.parse_args()

    (args.model / "tag_bigrams.json").unlink(missing_ok=True)
    tagger = PosTagger(args.model)
    index = {t: i for i, t in enumerate(tagger.tags)}
    train = clean_tags(load_sentences(args.train))
    bigrams = TagBigrams.count([[index[t] for t in s.tags] for s in train], len(tagger.tags))
    dev = clean_tags(load_sentences(args.dev))
    scores = tagger.scores_encoded([tagger.encode(list(s.words)) for s in dev])
    gold = [np.array([index[t] for t in s.tags]) for s in dev]
    total = sum(len(g) for g in gold)
    results = {}
    for w in WEIGHTS:
        correct = sum(int((bigrams.decode(sc, w) == g).sum()) for sc, g in zip(scores, gold, strict=True))
        results[w] = correct / total
        print(f"weight {w:4.2f}: dev token accuracy {results[w]:.4f}", flush=True)
    best = max(results, key=lambda w: (results[w], -w))
    if results[best] < results[0.0] + MIN_GAIN:
        best = 0.0
    report = {"dev_token_accuracy_by_weight": {str(w): a for w, a in results.items()}, "chosen_weight": best,
              "min_gain": MIN_GAIN}
    if best > 0:
        TagBigrams(bigrams.start, bigrams.transitions, best).save(args.model / "tag_bigrams.json", tagger.tags)
    (args.model / "decoding.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
