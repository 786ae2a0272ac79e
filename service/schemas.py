"""What goes over the wire: valid requests (with messages that name the problem, answered as 400), the answers'
shapes (for the OpenAPI document) and their JSON encoding."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainValidator, WithJsonSchema
from starlette.responses import Response

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


class SentimentResult(BaseModel):
    label: Literal["positive", "negative"] = Field(description="positive when score >= 0.5")
    score: float = Field(ge=0, le=1, description="P(positive)")


class PosResult(BaseModel):
    words: list[str] = Field(description="the words, in order (as given, for a pre-segmented item)")
    tags: list[str] = Field(description="PFR (People's Daily) tag of each word")
    upos: list[str] = Field(description="Universal POS tag of each word")
    offsets: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="[start, end) of each word in the text, in characters")


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="the first 12 hex digits of sha256")
    sha256: str = Field(description="sha256 of the model's model.onnx")
    metrics: dict[str, float] = Field(description="headline figures from the model card")
    provider: str = Field(description="the onnxruntime execution provider the model runs on")


class Info(BaseModel):
    version: str = Field(description="the senpos version")
    models: dict[str, ModelInfo]


class Error(BaseModel):
    error: str = Field(description="what went wrong, in a sentence")
    request_id: str = Field(description="also in the x-request-id header: quote it when reporting a problem")
    detail: list[dict] | None = Field(None, description="validation errors (400), one per problem")


def json_response(payload: Any, status: int = 200) -> Response:
    """JSON in UTF-8, Chinese unescaped (a lone surrogate from the input falls back to escapes)."""
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status, media_type="application/json")
