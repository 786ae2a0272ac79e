"""Loading labelled movie reviews from the formats people have them in.

The format is detected from the path:
- a directory in the official aclImdb layout (`<root>/train/{pos,neg}/<id>_<rating>.txt`, `unsup/`),
  or a split directory itself (`.../train` holding `pos/` and `neg/`);
- the official `aclImdb_v1.tar.gz` tarball, read without unpacking;
- JSON Lines, optionally gzipped (`{"text": ..., "label": 0|1|-1}`), like ../shared/data/imdb;
- the common 50k CSV with `review,sentiment` columns (`positive`/`negative`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
UNLABELLED = -1
_LABELS = {"neg": 0, "negative": 0, "0": 0, "pos": 1, "positive": 1, "1": 1, "unsup": UNLABELLED, "-1": UNLABELLED}
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/[^/]+\.txt$|(?:^|/)(unsup)/[^/]+\.txt$")


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 0 negative, 1 positive, -1 unlabelled


def detect_format(path: str | Path) -> str:
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "aclimdb"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tarball"
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return "jsonl"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ValueError(f"{path}: unknown format (expected an aclImdb directory, .tar.gz, .jsonl[.gz] or .csv)")


def load_reviews(path: str | Path, split: str = "train", include_unlabelled: bool = False) -> list[Review]:
    """Load reviews from `path`; `split` picks train/test/unsup inside aclImdb directories and tarballs."""
    fmt = detect_format(path)
    if fmt == "aclimdb":
        reviews = _from_directory(Path(path), split)
    elif fmt == "tarball":
        reviews = _from_tarball(Path(path), split)
    elif fmt == "jsonl":
        reviews = _from_jsonl(Path(path))
    else:
        reviews = _from_csv(Path(path))
    if not include_unlabelled:
        reviews = [r for r in reviews if r.label != UNLABELLED]
    if not reviews:
        raise ValueError(f"{path}: no reviews found (format {fmt}, split {split!r})")
    return reviews


def _label(value: object, where: str) -> int:
    key = str(value).strip().lower()
    if key not in _LABELS:
        raise ValueError(f"{where}: unknown label {value!r}")
    return _LABELS[key]


def _from_directory(root: Path, split: str) -> list[Review]:
    if split == "unsup":  # official layout: train/unsup/; a top-level unsup/ is accepted too
        base = next((d for d in (root / "train" / "unsup", root / "unsup", root) if d.is_dir() and d.name == "unsup"),
                    None)
        files = sorted(base.glob("*.txt")) if base else []
        return [Review(f.read_text(encoding="utf-8"), UNLABELLED) for f in files]
    base = root / split if (root / split).is_dir() else root
    reviews = []
    for folder in ("neg", "pos", "unsup"):
        for f in sorted((base / folder).glob("*.txt")):
            reviews.append(Review(f.read_text(encoding="utf-8"), _LABELS[folder]))
    return reviews


def _from_tarball(path: Path, split: str) -> list[Review]:
    reviews = []
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            m = _MEMBER.search(member.name)
            if not member.isfile() or not m:
                continue
            member_split, folder = (m.group(1), m.group(2)) if m.group(1) else ("unsup", "unsup")
            wanted = folder == "unsup" if split == "unsup" else member_split == split
            if not wanted:
                continue
            text = tar.extractfile(member).read().decode("utf-8")
            reviews.append((member.name, Review(text, _LABELS[folder])))
    return [r for _, r in sorted(reviews, key=lambda x: x[0])]


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _from_jsonl(path: Path) -> list[Review]:
    reviews = []
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: expected a JSON object with 'text' ({e})") from e
            reviews.append(Review(text, _label(row.get("label", UNLABELLED), f"{path}:{n}")))
    return reviews


def _from_csv(path: Path) -> list[Review]:
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"review", "sentiment"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected CSV columns 'review,sentiment', got {reader.fieldnames}")
        return [Review(row["review"], _label(row["sentiment"], f"{path}:{n + 2}")) for n, row in enumerate(reader)]


def stratified_split(reviews: list[Review], fraction: float, seed: int) -> tuple[list[Review], list[Review]]:
    """Hold out `fraction` of each label (fixed seed): returns (train, validation), both shuffled."""
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({r.label for r in reviews}):
        group = [r for r in reviews if r.label == label]
        rng.shuffle(group)
        n_val = round(len(group) * fraction)
        val += group[:n_val]
        train += group[n_val:]
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val
