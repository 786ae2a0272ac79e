"""Real payloads: IMDB reviews (their natural length distribution) and PFR dev sentences.

Read from `senpos.data_root.data_root()` ($SENPOS_DATA, else ../shared/data); a smoke run falls back to the tiny
test fixtures when the data is not there.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from senpos.data_root import data_root

REPO = Path(__file__).resolve().parents[1]
DATA = data_root()


def _source(path: Path, fixture: str, smoke: bool) -> Path:
    """The real data, or the fixture in a smoke run. A real run never falls back to the fixture: its numbers
    would look like a benchmark and be about a handful of short texts."""
    if path.exists():
        return path
    if smoke:
        return REPO / "tests" / "fixtures" / fixture
    raise SystemExit(f"{path} not found: a benchmark needs the real data (../shared/data, or set SENPOS_DATA); "
                     "--smoke runs on the test fixtures")


def reviews(n: int, seed: int = 0, smoke: bool = False) -> list[str]:
    path = _source(DATA / "imdb" / "train.jsonl.gz", "reviews.jsonl", smoke)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def sentences(n: int, seed: int = 0, smoke: bool = False) -> list[str]:
    path = _source(DATA / "zh_pos" / "pfr1998_01" / "dev.jsonl.gz", "pos_tiny.jsonl", smoke)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        texts = ["".join(json.loads(line)["words"]) for line in f if line.strip()]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]
