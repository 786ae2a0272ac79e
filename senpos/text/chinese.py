"""Chinese text processing shared by POS training and serving: width folding, word keys, segmentation.

Full-width ASCII (`１９９８年`, `ＩＭＦ`) is folded to half-width one character for one character, so
every offset in the folded text is also an offset in the original: the words returned to users are
always slices of what they sent.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

_FULL_TO_HALF = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULL_TO_HALF[0x3000] = 0x20  # ideographic space
_DIGIT = re.compile(r"[0-9]")
# The corpus writes dates as one word (１９９８年/t, １２月/t, ８日/t) but durations as two (３/m 年/q);
# jieba splits both. A year has 2-4 digits, a month or day 1-2.
_DATE_NUMBER = {"年": re.compile(r"[0-9]{2,4}"), "月": re.compile(r"[0-9]{1,2}"), "日": re.compile(r"[0-9]{1,2}")}
# jieba yields non-Chinese punctuation one character at a time; the corpus keeps runs of dashes and
# ellipses (——, ……) as one word.
_RUNS = frozenset("—…")


def fold_width(text: str) -> str:
    """Full-width ASCII and the ideographic space -> half-width; length and offsets are unchanged."""
    return text.translate(_FULL_TO_HALF)


def word_key(word: str) -> str:
    """The form a word is looked up by: width-folded, lowercased, every digit as 0 (`1998年` -> `0000年`)."""
    return _DIGIT.sub("0", fold_width(word).lower())


MAX_WORD_CHARS = 32  # the character CNN reads at most this many characters of a word (the corpus max is 26)


def char_keys(word: str) -> list[str]:
    return list(word_key(word))[:MAX_WORD_CHARS]


def _merge_corpus_conventions(norm: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and out[-1][1] == start:
            prev = norm[out[-1][0] : start]
            number = _DATE_NUMBER.get(norm[start:end])
            run = norm[start:end] in _RUNS and set(prev) == {norm[start]}
            if run or (number is not None and number.fullmatch(prev)):
                out[-1] = (out[-1][0], end)
                continue
        out.append((start, end))
    return out


class Segmenter:
    """Word segmentation with a dedicated jieba.Tokenizer (never jieba's global one).

    `dictionary` is a jieba dictionary file (`word freq tag` lines), e.g. the one built from the
    training corpus; None means jieba's default dictionary.
    """

    def __init__(self, dictionary: str | Path | None = None, hmm: bool = False, conventions: bool = True):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        if dictionary is not None and not Path(dictionary).is_file():
            raise FileNotFoundError(f"{dictionary}: jieba dictionary not found")
        self.tokenizer = jieba.Tokenizer(dictionary=str(dictionary) if dictionary else jieba.DEFAULT_DICT)
        self.tokenizer.initialize()  # build the prefix dictionary now, not on the first request
        self.hmm = hmm
        self.conventions = conventions

    def spans(self, text: str) -> list[tuple[int, int]]:
        """[start, end) character offsets of each word of `text`; whitespace is not a word."""
        norm = fold_width(text)
        spans, pos = [], 0
        for piece in self.tokenizer.cut(norm, HMM=self.hmm):
            start, pos = pos, pos + len(piece)
            if piece.strip():
                spans.append((start, pos))
        if pos != len(norm):  # jieba's cut is lossless; if that ever changes, fail loudly
            raise RuntimeError(f"segmentation lost characters: {len(norm)} in, {pos} out")
        return _merge_corpus_conventions(norm, spans) if self.conventions else spans

    def words(self, text: str) -> list[str]:
        return [text[s:e] for s, e in self.spans(text)]


def word_offsets(words: list[str]) -> list[tuple[int, int]]:
    """Offsets of pre-segmented words in their concatenation."""
    out, pos = [], 0
    for w in words:
        out.append((pos, pos + len(w)))
        pos += len(w)
    return out


class Lexicon:
    """Each word's tag in jieba's default dictionary (349k words), as a feature id for the tagger.

    It tells the tagger something about words the training corpus never had (names, idioms, terms).
    """

    def __init__(self, tags: list[str], path: str | Path | None = None):
        import jieba

        from senpos.pos_tags import from_jieba

        index = {t: i for i, t in enumerate(tags)}
        path = Path(path) if path else Path(jieba.__file__).parent / "dict.txt"
        self.ids: dict[str, int] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    self.ids.setdefault(word_key(parts[0]), index.get(from_jieba(parts[2]), 0))

    def encode(self, words) -> list[int]:
        return [self.ids.get(word_key(w), 0) for w in words]


# Boundary features for the character model that corrects jieba (senpos.pos.BoundaryCorrector; trained by
# training/pos/segmenter.py): per character its key, the bigram ending at it, and its place in jieba's word.
JIEBA_PLACES = ("<pad>", "B", "M", "E", "S", "space")  # ids 0..5: begin, middle, end of a word, single, whitespace
BIGRAM_START = "^"  # the character before the first one


def jieba_places(n: int, spans: list[tuple[int, int]]) -> list[int]:
    """Each of n characters' place in the jieba word covering it (JIEBA_PLACES ids); whitespace is `space`."""
    out = [5] * n
    for a, b in spans:
        if b - a == 1:
            out[a] = 4
        else:
            out[a] = 1
            out[a + 1 : b - 1] = [2] * (b - a - 2)
            out[b - 1] = 3
    return out


def boundary_features(text: str, spans: list[tuple[int, int]]) -> tuple[list[str], list[str], list[int]]:
    """(character keys, bigram keys, jieba places) of `text`, one per character; `spans` are jieba's words."""
    keys = [c.lower() for c in _DIGIT.sub("0", fold_width(text))]  # word_key of each character
    bigrams = [a + b for a, b in zip(([BIGRAM_START] + keys)[: len(keys)], keys, strict=True)]
    return keys, bigrams, jieba_places(len(text), spans)


def spans_from_starts(text: str, starts) -> list[tuple[int, int]]:
    """Words from per-character `starts` (truthy: a word begins here). Whitespace is never part of a word and
    always ends one, so every span is non-blank and the spans keep their order."""
    out: list[tuple[int, int]] = []
    begin = None
    for i, ch in enumerate(text):
        if ch.isspace():
            if begin is not None:
                out.append((begin, i))
                begin = None
        elif begin is None:
            begin = i
        elif starts[i]:
            out.append((begin, i))
            begin = i
    if begin is not None:
        out.append((begin, len(text)))
    return out
