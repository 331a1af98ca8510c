"""Frames on the local unix sockets (master control, minion local).

Each frame is a 4-byte big-endian length, then one msgpack value.

A request is ``{"op": "key.list", "args": {...}}``; a reply is ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": "...", "code": "..."}``. A streaming reply sends several
``{"ok": true, "item": ...}`` frames and ends with ``{"ok": true, "end": true}``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from reactord.protocol import codec
from reactord.protocol.errors import DecodeError

MAX_CONTROL_FRAME = 64 << 20
_HEADER = struct.Struct(">I")


def encode(value: Any) -> bytes:
    data = codec.pack(value)
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next value, or ``None`` at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise DecodeError("truncated frame header") from exc
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_CONTROL_FRAME:
        raise DecodeError(f"control frame of {size} bytes is too large")
    try:
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise DecodeError("truncated frame") from exc
    return codec.unpack(data, max_size=MAX_CONTROL_FRAME)


def recv_frame(sock: socket.socket) -> Any:
    """Blocking read of one value (the CLI side); raises ``ConnectionError`` at end of stream."""
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if size > MAX_CONTROL_FRAME:
        raise DecodeError(f"control frame of {size} bytes is too large")
    return codec.unpack(_recv_exactly(sock, size), max_size=MAX_CONTROL_FRAME)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionError("the master closed the control connection")
        chunks += chunk
    return bytes(chunks)
