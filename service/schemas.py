"""Request validation: what a valid request is, with messages that name the problem (answered as 400)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema

from service.settings import SETTINGS


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("text is empty or whitespace only")
    if len(value) > SETTINGS.max_text_chars:
        raise ValueError(f"text has {len(value)} characters; the limit is {SETTINGS.max_text_chars} "
                         "(SENPOS_MAX_TEXT_CHARS)")
    return value


def _word_list(words: list[str]) -> list[str]:
    if not words:
        raise ValueError("a word list must hold at least one word")
    for i, w in enumerate(words):
        if not w.strip():
            raise ValueError(f"word {i} is empty or whitespace only")
    total = sum(map(len, words))
    if total > SETTINGS.max_text_chars:
        raise ValueError(f"word list has {total} characters; the limit is {SETTINGS.max_text_chars} "
                         "(SENPOS_MAX_TEXT_CHARS)")
    return words


# The JSON schema states the limits (schemathesis and clients read it); _text enforces them with clear messages.
Text = Annotated[str, AfterValidator(_text),
                 WithJsonSchema({"type": "string", "minLength": 1, "maxLength": SETTINGS.max_text_chars,
                                 "pattern": "\\S"})]
Texts = Annotated[list[Text], Field(min_length=1, max_length=SETTINGS.max_items,
                                    description=f"1 to {SETTINGS.max_items} non-empty texts")]
def _pos_item(value: object) -> str | list[str]:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list) and all(isinstance(w, str) for w in value):
        return _word_list(value)
    raise ValueError("an item must be a string (a text to segment) or a list of strings (words to tag)")


PosItem = Annotated[str | list[str], PlainValidator(_pos_item),
                    WithJsonSchema({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": SETTINGS.max_text_chars, "pattern": "\\S"},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "pattern": "\\S"}}]})]
PosItems = Annotated[list[PosItem], Field(
    min_length=1, max_length=SETTINGS.max_items,
    description=f"1 to {SETTINGS.max_items} items: a text to segment, or a list of words to tag as given")]
