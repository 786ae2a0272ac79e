"""Real payloads: IMDB reviews (their natural length distribution) and PFR dev sentences.

Read from ../shared/data, or from $SENPOS_DATA (same layout: a machine without the shared folder, like a GPU box);
falls back to the tiny test fixtures when neither exists (smoke runs only).
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENPOS_DATA") or REPO.parent / "shared" / "data")


def reviews(n: int, seed: int = 0) -> list[str]:
    path = DATA / "imdb" / "train.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
    else:
        fixture = REPO / "tests" / "fixtures" / "reviews.jsonl"
        texts = [json.loads(x)["text"] for x in fixture.read_text().splitlines()]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def sentences(n: int, seed: int = 0) -> list[str]:
    path = DATA / "zh_pos" / "pfr1998_01" / "dev.jsonl.gz"
    if not path.exists():
        path = REPO / "tests" / "fixtures" / "pos_tiny.jsonl"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        texts = ["".join(json.loads(line)["words"]) for line in f]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]
