"""The model server's wire format: a JSON header and raw numpy arrays, length-prefixed, over a stream.

Frame: 8 bytes (header length, payload length, big-endian uint32), the UTF-8 JSON header, then the arrays'
bytes back to back. The header names each array's dtype and shape, so nothing is unpickled: the format is as
safe across pods as on one host.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

_PREFIX = struct.Struct("!II")
_DTYPES = frozenset({"int32", "int64", "float32"})
MAX_FRAME_BYTES = 256 * 2**20


class WireError(RuntimeError):
    """A malformed frame: the connection is closed."""


def frame(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = {**header, "arrays": [[a.dtype.name, list(a.shape)] for a in arrays]}
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = b"".join(a.tobytes() for a in arrays)
    return _PREFIX.pack(len(head), len(payload)) + head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The next frame; asyncio.IncompleteReadError at a clean end of stream."""
    head_len, payload_len = _PREFIX.unpack(await reader.readexactly(_PREFIX.size))
    if head_len + payload_len > MAX_FRAME_BYTES:
        raise WireError(f"frame of {head_len + payload_len} bytes is over the limit")
    header = json.loads(await reader.readexactly(head_len))
    payload = await reader.readexactly(payload_len) if payload_len else b""
    arrays, offset = [], 0
    for dtype, shape in header.pop("arrays", []):
        if dtype not in _DTYPES:
            raise WireError(f"unexpected dtype {dtype!r}")
        count = int(np.prod(shape, dtype=np.int64))
        size = count * np.dtype(dtype).itemsize
        if offset + size > len(payload):
            raise WireError("payload shorter than its header says")
        arrays.append(np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape))
        offset += size
    return header, arrays


def parse_address(address: str) -> tuple[str, str]:
    """`unix:///path` or `/path` -> ("unix", path); `tcp://host:port` -> ("tcp", "host:port")."""
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{address!r}: expected tcp://host:port")
        return "tcp", f"{host}:{port}"
    path = address[len("unix://") :] if address.startswith("unix://") else address
    if not path.startswith("/"):
        raise ValueError(f"{address!r}: expected unix:///absolute/path or tcp://host:port")
    return "unix", path


async def open_connection(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, where = parse_address(address)
    if kind == "unix":
        return await asyncio.open_unix_connection(where, limit=2**20)
    host, port = where.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port), limit=2**20)


async def start_server(handler, address: str) -> asyncio.AbstractServer:
    kind, where = parse_address(address)
    if kind == "unix":
        return await asyncio.start_unix_server(handler, where, limit=2**20)
    host, port = where.rsplit(":", 1)
    return await asyncio.start_server(handler, host, int(port), limit=2**20)
