"""A token vocabulary stored as JSON (never pickle: artifacts must be safe to load)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """Maps tokens to ids; id 0 is padding, id 1 is unknown."""

    def __init__(self, itos: list[str]):
        if itos[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}; got {itos[:2]!r}")
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}
        if len(self.stoi) != len(itos):
            raise ValueError("vocabulary has duplicate tokens")

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], min_freq: int, max_size: int) -> Vocab:
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        # Sort by (-count, token) so the vocabulary is deterministic for equal counts.
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK] + kept[: max(0, max_size - 2)])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        unk = 1
        return [self.stoi.get(t, unk) for t in tokens]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"itos": self.itos}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(list(data["itos"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a valid vocabulary file ({e})") from e
