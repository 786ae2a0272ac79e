"""Open Inference Protocol tensors over REST: an inference request's JSON header and binary data in, the answer's
out (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol, and Triton's binary
tensor data extension, which `tritonclient.http` uses by default).

Binary data follows the JSON header in the body; `Inference-Header-Content-Length` says where the header ends.
A BYTES element is its length (4 bytes, little-endian) then its bytes; FP32 is little-endian floats."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER_LENGTH = "inference-header-content-length"


class OipError(Exception):
    """A request the protocol answers with `{"error": message}` and `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str  # "FP32" or "BYTES"
    values: Sequence[float] | Sequence[str]


@dataclass(frozen=True)
class Request:
    id: str | None
    texts: list[str]  # the one BYTES input's elements, in row-major order
    shape: list[int]  # its shape: [N] or [N, 1]
    outputs: list[str] | None  # the outputs asked for (all when None)
    binary: dict[str, bool]  # output name -> answer it as binary data
    binary_default: bool


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise OipError(400, f"{what} must be a JSON object")
    return value


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        raise OipError(400, "an input's data must be a list")
    flat: list = []
    for x in data:
        flat += _flatten(x) if isinstance(x, list) else [x]
    return flat


def _bytes_elements(raw: bytes, count: int) -> list[str]:
    """`count` BYTES elements from binary data, each decoded as UTF-8."""
    out, at = [], 0
    for i in range(count):
        if at + 4 > len(raw):
            raise OipError(400, f"input 'text': binary data holds {i} elements; its shape says {count}")
        (n,) = struct.unpack_from("<I", raw, at)
        if at + 4 + n > len(raw):
            raise OipError(400, f"input 'text': element {i} runs past the end of its binary data")
        try:
            out.append(raw[at + 4:at + 4 + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise OipError(400, f"input 'text': element {i} is not UTF-8 text") from None
        at += 4 + n
    if at != len(raw):
        raise OipError(400, f"input 'text': binary data holds more than the {count} elements its shape says")
    return out


def _shape(value: Any, max_items: int) -> list[int]:
    if (not isinstance(value, list) or not 1 <= len(value) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)
            or (len(value) == 2 and value[1] != 1)):
        raise OipError(400, f"input 'text' must have shape [N] or [N, 1], not {json.dumps(value)}")
    if value[0] > max_items:
        raise OipError(413, f"input 'text' has {value[0]} elements; the limit is {max_items} (SENPOS_MAX_ITEMS): "
                            "split it into smaller requests")
    return value


def parse_request(body: bytes, header_length: str | None, output_names: Sequence[str],
                  max_items: int) -> Request:
    """An inference request for a model with one BYTES input `text` and the outputs `output_names`."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise OipError(400, f"Inference-Header-Content-Length is {header_length!r}; the body has {len(body)} "
                                "bytes")
        json_part, binary = body[:int(header_length)], body[int(header_length):]
    try:
        header = _object(json.loads(json_part), "the inference request")
    except (ValueError, RecursionError):
        raise OipError(400, "the inference request is not valid JSON") from None
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise OipError(400, "the request must have exactly one input, 'text'")
    tensor = _object(inputs[0], "an input")
    if tensor.get("name") != "text":
        raise OipError(400, f"unknown input {tensor.get('name')!r}: the model's one input is 'text'")
    if tensor.get("datatype") != "BYTES":
        raise OipError(400, f"input 'text' must be BYTES, not {tensor.get('datatype')!r}")
    shape = _shape(tensor.get("shape"), max_items)
    count = math.prod(shape)
    size = _object(tensor.get("parameters", {}), "an input's parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size != len(binary):
            raise OipError(400, f"input 'text': binary_data_size is {size!r}; {len(binary)} bytes follow the header")
        texts = _bytes_elements(binary, count)
    else:
        if binary:
            raise OipError(400, "binary data follows the header, but no input has binary_data_size")
        texts = _flatten(tensor.get("data"))
        if len(texts) != count:
            raise OipError(400, f"input 'text' has {len(texts)} elements; its shape says {count}")
        if not all(isinstance(t, str) for t in texts):
            raise OipError(400, "input 'text': every element must be a string")
    params = _object(header.get("parameters", {}), "the request's parameters")
    outputs: list[str] | None = None
    binary_of: dict[str, bool] = {}
    if "outputs" in header:
        asked = header["outputs"]
        if not isinstance(asked, list):
            raise OipError(400, "outputs must be a list")
        outputs = []
        for o in asked:
            name = _object(o, "an output").get("name")
            if not isinstance(name, str) or name not in output_names:
                raise OipError(400, f"unknown output {name!r}: the model's outputs are {', '.join(output_names)}")
            outputs.append(name)
            flag = _object(o.get("parameters", {}), "an output's parameters").get("binary_data")
            if flag is not None:
                binary_of[name] = bool(flag)
    request_id = header.get("id")
    return Request(request_id if isinstance(request_id, str) else None, texts, shape, outputs, binary_of,
                   bool(params.get("binary_data_output", False)))


def dumps(payload: Any) -> str:
    """JSON with non-ASCII text as is, unless that cannot be UTF-8 (a lone surrogate from the input): escaped."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":"))
    return text


def _binary(output: Output) -> bytes:
    if output.datatype == "FP32":
        return np.asarray(output.values, dtype="<f4").tobytes()
    return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in output.values))


def encode_response(request: Request, model: str, version: str, outputs: Mapping[str, Output]
                    ) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: JSON, or a JSON header followed by the outputs answered as binary data."""
    shape = request.shape
    described, data = [], []
    for name in request.outputs or list(outputs):
        out = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": out.datatype, "shape": shape}
        if request.binary.get(name, request.binary_default):
            raw = _binary(out)
            entry["parameters"] = {"binary_data_size": len(raw)}
            data.append(raw)
        else:
            entry["data"] = list(out.values)
        described.append(entry)
    answer: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request.id is not None:
        answer["id"] = request.id
    header = dumps(answer).encode()
    if not data:
        return header, {"content-type": "application/json"}
    return header + b"".join(data), {"content-type": "application/octet-stream",
                                      HEADER_LENGTH: str(len(header))}
