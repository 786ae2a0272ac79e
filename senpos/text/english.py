"""English review preprocessing: markup cleaning, spaCy rule-based tokenisation, truncation.

Training and serving both call `tokenize` and `truncate`, so the model always sees the same tokens.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)  # IMDB reviews keep their <br /> line breaks
_TAG = re.compile(r"<[^>]{0,100}>")  # any other stray HTML tag
_SPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Remove HTML line breaks/tags and entities, collapse whitespace."""
    text = _BREAK.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1)
def _tokenizer():
    # spacy.blank("en") is the rule-based tokenizer only: no model download, no pipeline.
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str) -> list[str]:
    """Clean, tokenise and lowercase one text."""
    return [t.lower_ for t in _tokenizer()(clean(text)) if not t.is_space]


def tokenize_many(texts: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
    """Streaming `tokenize` over many texts (spaCy's pipe is faster than a loop of calls)."""
    for doc in _tokenizer().pipe((clean(t) for t in texts), batch_size=batch_size):
        yield [t.lower_ for t in doc if not t.is_space]


def truncate(ids: list[int], max_tokens: int, head_tokens: int) -> list[int]:
    """Keep the first `head_tokens` and the last `max_tokens - head_tokens` tokens of a long review.

    Reviews often state the verdict at the end, so head+tail beats head-only truncation.
    """
    if len(ids) <= max_tokens:
        return ids
    tail = max_tokens - head_tokens
    return ids[:head_tokens] + (ids[-tail:] if tail > 0 else [])
