"""Throughput of POS model directories next to jieba.posseg, in one process on one core, chars/s.

On a shared machine a single timing says more about the neighbours than the code, so every system runs the same
texts in turn, `repeats` times, interleaved, and the best pass of each counts. Measured per system:
- jieba.posseg (default dictionary), the tool a user would pick by default;
- each model directory's whole pipeline (`PosTagger.tag` on raw texts, in batches of `batch` texts),
  its segmentation alone (jieba + corrector) and its tagger alone (encoded words -> tags).
  `DIR@nocache` loads DIR without PosTagger's word cache, as the tagger ran before it had one; with it, each
  pass starts with an empty cache (no credit for words seen in an earlier pass). `DIR@float` runs the float32
  tagger of a directory that also has an int8 one.

    python -m training.pos.speed models/pos@nocache runs/pos/candidate --sentences 1500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from senpos.data_root import data_root
from senpos.pos import WORD_CACHE, PosTagger
from training.pos.data import load_sentences
from training.pos.evaluate import posseg_tokenizer

DEFAULT_DEV = data_root() / "zh_pos" / "pfr1998_01" / "dev.jsonl.gz"


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def measure(model_dirs: list[Path], texts: list[str], repeats: int = 3, batch: int = 32) -> dict:
    posseg = posseg_tokenizer()
    runs: dict[str, Callable[[], object]] = {"jieba_posseg": lambda: [list(posseg.cut(t)) for t in texts]}
    for d in model_dirs:
        path, _, option = str(d).partition("@")
        tagger = PosTagger(path, threads=1, word_cache=0 if option == "nocache" else WORD_CACHE,
                           precision="float" if option == "float" else "auto")
        words = [w for w, _ in tagger.segment_many(texts)]
        encoded = [tagger.encode(w) for w in words]
        runs[f"{d}:pipeline"] = lambda t=tagger: (t._word_cache.clear(), [t.tag(c) for c in _chunks(texts, batch)])
        runs[f"{d}:segmentation"] = lambda t=tagger: [t.segment_many(c) for c in _chunks(texts, batch)]
        runs[f"{d}:tagger_alone"] = lambda t=tagger, e=encoded: [t.tag_encoded(c) for c in _chunks(e, batch)]
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    n_chars = sum(map(len, texts))
    rates = {name: round(n_chars / s) for name, s in best.items()}
    ratios = {name: round(rate / rates["jieba_posseg"], 3) for name, rate in rates.items()}
    return {"texts": len(texts), "chars": n_chars, "repeats": repeats, "batch": batch, "chars_per_s": rates,
            "relative_to_jieba_posseg": ratios}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.pos.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", default=str(DEFAULT_DEV))
    parser.add_argument("--sentences", type=int, default=1500, help="the first N sentences of --data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="texts per PosTagger.tag call")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = ["".join(s.words) for s in load_sentences(args.data)[: args.sentences]]
    result = measure(args.models, texts, args.repeats, args.batch)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
