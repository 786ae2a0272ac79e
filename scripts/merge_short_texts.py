"""Merge newly written short training texts into training/sentiment/short_texts/train.jsonl.

Drops a new text that repeats a training text or another new one (lowercased, punctuation dropped), or that is
close to an evaluation text or a robustness probe (word-set Jaccard >= 0.6, or character similarity >= 0.8 with
two words shared); appends the rest and shuffles the whole file with a fixed seed.

    python scripts/merge_short_texts.py NEW.jsonl [NEW.jsonl ...] [--seed 20261207]
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "training/sentiment/short_texts/train.jsonl"
HELD_OUT = [REPO / "training/sentiment/short_texts/eval.jsonl", REPO / "tests/fixtures/sentiment_probes.jsonl"]
FIELDS = {"text", "label", "domain", "phenomenon"}


def key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def close(a: str, b: str) -> bool:
    wa, wb = set(a.split()), set(b.split())
    if not wa or not wb:
        return False
    if len(wa & wb) / len(wa | wb) >= 0.6:
        return True
    if len(wa & wb) < 2:
        return False
    m = difflib.SequenceMatcher(None, a, b)
    return m.real_quick_ratio() >= 0.8 and m.quick_ratio() >= 0.8 and m.ratio() >= 0.8


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args()
    train = read(TRAIN)
    held = [key(r["text"]) for p in HELD_OUT for r in read(p)]
    seen = {key(r["text"]) for r in train}
    added, dropped = [], {"repeat": 0, "close to held-out": 0}
    for path in args.new:
        for r in read(path):
            r = {k: r[k] for k in ("text", "label", "domain", "phenomenon")}
            k = key(r["text"])
            if k in seen:
                dropped["repeat"] += 1
            elif any(close(k, h) for h in held):
                dropped["close to held-out"] += 1
            else:
                seen.add(k)
                added.append(r)
    rows = train + added
    random.Random(args.seed).shuffle(rows)
    TRAIN.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(json.dumps({"before": len(train), "added": len(added), "dropped": dropped, "after": len(rows),
                      "labels": {str(v): sum(r["label"] == v for r in rows) for v in (0, 1)}}))


if __name__ == "__main__":
    main()
