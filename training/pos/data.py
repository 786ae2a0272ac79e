"""Loading POS-tagged Chinese sentences; the format is detected from the path.

- JSON Lines, optionally gzipped: `{"words": [...], "tags": [...]}` (../shared/data/zh_pos);
- the original PFR / People's Daily text format (`.txt`, GBK or UTF-8): a paragraph id, then
  `word/tag` tokens, with `[word/tag word/tag]nt` compounds flattened to their inner words;
- CoNLL-U (`.conllu`), Universal Dependencies treebanks: FORM with XPOS (UPOS when XPOS is `_`).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

_PARA_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}(?:#\d+)?/m$")
_FINAL = "。！？"
_CLOSING = "”’）》」』］〉"


@dataclass(frozen=True)
class Sentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]


def detect_format(path: str | Path) -> str:
    name = Path(path).name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return "jsonl"
    if name.endswith((".conllu", ".conllu.gz", ".conll", ".conll.gz")):
        return "conllu"
    if name.endswith((".txt", ".txt.gz")):
        return "pfr"
    raise ValueError(f"{path}: unknown format (expected .jsonl[.gz], .conllu or PFR .txt)")


def load_sentences(path: str | Path) -> list[Sentence]:
    fmt = detect_format(path)
    text = _read_text(Path(path))
    sentences = {"jsonl": _from_jsonl, "conllu": _from_conllu, "pfr": _from_pfr}[fmt](text, str(path))
    if not sentences:
        raise ValueError(f"{path}: no sentences found (format {fmt})")
    return sentences


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gbk")  # the original PFR distribution is GBK


def _sentence(words: list[str], tags: list[str], where: str) -> Sentence:
    if len(words) != len(tags) or not words or not all(words) or not all(tags):
        raise ValueError(f"{where}: words and tags must be non-empty lists of the same length")
    return Sentence(tuple(words), tuple(tags))


def _from_jsonl(text: str, where: str) -> list[Sentence]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                out.append(_sentence(list(row["words"]), list(row["tags"]), f"{where}:{n}"))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{where}:{n}: expected {{'words': [...], 'tags': [...]}} ({e})") from e
    return out


def _from_conllu(text: str, where: str) -> list[Sentence]:
    out, words, tags = [], [], []
    for n, line in enumerate(text.splitlines() + [""], 1):
        if not line.strip():
            if words:
                out.append(_sentence(words, tags, f"{where}:{n}"))
            words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise ValueError(f"{where}:{n}: a CoNLL-U token line has 10 tab-separated columns, got {len(cols)}")
        if "-" in cols[0] or "." in cols[0]:  # multiword token ranges and empty nodes
            continue
        words.append(cols[1])
        tags.append(cols[4] if cols[4] != "_" else cols[3])
    return out


def _pfr_tokens(line: str, where: str) -> tuple[list[str], list[str]]:
    words, tags = [], []
    for token in line.split():
        if _PARA_ID.match(token):
            continue
        token = token.lstrip("[")
        if "]" in token:  # `电台/n]nt`: close a compound, drop its outer tag
            token = token[: token.rindex("]")]
        word, sep, tag = token.rpartition("/")
        if not sep or not word or not tag:
            raise ValueError(f"{where}: malformed token {token!r} (expected word/tag)")
        words.append(word)
        tags.append(tag)
    return words, tags


def split_sentences(words: list[str], tags: list[str]) -> list[tuple[list[str], list[str]]]:
    """Cut a paragraph after 。！？ and any closing punctuation that directly follows."""
    out, start, i = [], 0, 0
    while i < len(words):
        if words[i] and words[i][-1] in _FINAL:
            while i + 1 < len(words) and words[i + 1] and all(c in _FINAL + _CLOSING for c in words[i + 1]):
                i += 1
            out.append((words[start : i + 1], tags[start : i + 1]))
            start = i + 1
        i += 1
    if start < len(words):
        out.append((words[start:], tags[start:]))
    return out


def _from_pfr(text: str, where: str) -> list[Sentence]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            words, tags = _pfr_tokens(line, f"{where}:{n}")
            out += [_sentence(w, t, f"{where}:{n}") for w, t in split_sentences(words, tags)]
    return out
