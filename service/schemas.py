"""What goes over the wire: valid requests (with messages that name the problem: 400, or 413 for a size limit),
the answers' shapes (for the OpenAPI document) and their JSON encoding."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from service.settings import SETTINGS

LIMIT_ERROR = "senpos_limit"  # the pydantic error type of a size limit: answered 413, like every size limit
# "Not blank": a character other than whitespace as Python's str.isspace has it, written out so that the document's
# `pattern` (ECMA-262, which has other whitespace) and the server's check are the very same rule.
NOT_BLANK = ("[^\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
             "\\u205f\\u3000]")
_not_blank = re.compile(NOT_BLANK).search
# Characters per item: SENPOS_MAX_TEXT_CHARS, and no more than a whole request may hold (SENPOS_MAX_REQUEST_CHARS).
ITEM_CHARS = {m: min(SETTINGS.max_text_chars, n) for m, n in SETTINGS.max_request_chars.items()}


def _too_large(what: str, chars: int) -> PydanticCustomError:
    return PydanticCustomError(LIMIT_ERROR, f"{what} has {chars} characters; the limit is {SETTINGS.max_text_chars} "
                               "(SENPOS_MAX_TEXT_CHARS)")


def _text(value: str) -> str:
    if not _not_blank(value):
        raise PydanticCustomError("blank", "text is empty or whitespace only")
    if len(value) > SETTINGS.max_text_chars:
        raise _too_large("text", len(value))
    return value


def _word_list(words: list[str]) -> list[str]:
    if not words:
        raise PydanticCustomError("blank", "a word list must hold at least one word")
    for i, w in enumerate(words):
        if not _not_blank(w):
            raise PydanticCustomError("blank", f"word {i} is empty or whitespace only")
    total = sum(map(len, words))
    if total > SETTINGS.max_text_chars:
        raise _too_large("word list", total)
    return words


def _string(model: str) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": ITEM_CHARS[model], "pattern": NOT_BLANK}


# The JSON schema states the limits (schemathesis and clients read it); the validators enforce them with clear
# messages. What JSON Schema cannot say (characters summed over a request or a word list) the description does.
Text = Annotated[str, AfterValidator(_text), WithJsonSchema(_string("sentiment"))]
Texts = Annotated[list[Text], Field(min_length=1, max_length=SETTINGS.max_items, description=(
    f"1 to {SETTINGS.max_items} texts (SENPOS_MAX_ITEMS), each not blank, at most {ITEM_CHARS['sentiment']} "
    f"characters (SENPOS_MAX_TEXT_CHARS), {SETTINGS.max_request_chars['sentiment']} in all "
    "(SENPOS_MAX_REQUEST_CHARS); a size limit is answered 413"))]


def _pos_item(value: object) -> str | list[str]:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list) and all(isinstance(w, str) for w in value):
        return _word_list(value)
    raise PydanticCustomError("pos_item_type", "expected a string or a list of strings")


PosItem = Annotated[str | list[str], PlainValidator(_pos_item), WithJsonSchema({"anyOf": [
    _string("pos"), {"type": "array", "minItems": 1, "maxItems": ITEM_CHARS["pos"], "items": _string("pos")}]})]
PosItems = Annotated[list[PosItem], Field(min_length=1, max_length=SETTINGS.max_items, description=(
    f"1 to {SETTINGS.max_items} items (SENPOS_MAX_ITEMS), each a text to segment or a list of words to tag as "
    f"given, not blank, at most {ITEM_CHARS['pos']} characters (SENPOS_MAX_TEXT_CHARS; a word list's words "
    f"together), {SETTINGS.max_request_chars['pos']} in all (SENPOS_MAX_REQUEST_CHARS); a size limit is "
    "answered 413"))]


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


def over_request_limit(items: Sequence[str | Sequence[str]], model: str) -> str | None:
    """Why a request is over SENPOS_MAX_REQUEST_CHARS (a 413), or None: what one request may cost everyone else
    is bounded."""
    total = sum(len(x) if isinstance(x, str) else sum(map(len, x)) for x in items)
    limit = SETTINGS.max_request_chars[model]
    if total <= limit:
        return None
    return (f"the request has {total} characters in all; the limit is {limit} (SENPOS_MAX_REQUEST_CHARS): "
            "split it into smaller requests")


def json_response(payload: Any, status: int = 200) -> Response:
    """JSON in UTF-8, Chinese unescaped (a lone surrogate from the input falls back to escapes)."""
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status, media_type="application/json")
