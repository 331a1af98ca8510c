"""Frames on the local unix sockets (master control, minion local).

Each frame is a 4-byte big-endian word, then at most 64 MiB of bytes. The word's low 31 bits
are the length; its high bit says the value goes on in the next frame. A message is one
msgpack value: the bytes of one frame, or of several frames in a row when it is larger than
64 MiB (a big state table, a job's returns from many minions). Readers bound the whole
message: a server takes requests of 64 MiB at most, a client answers of 1 GiB at most.

A request is ``{"op": "key.list", "args": {...}}``; a reply is ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": "...", "code": "..."}``. A streaming reply sends several
``{"ok": true, "item": ...}`` messages and ends with ``{"ok": true, "end": true}``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from typing import Any

from reactord.protocol import codec
from reactord.protocol.errors import DecodeError

MAX_CONTROL_FRAME = 64 << 20
#: The largest message a client takes (over continuation frames): what the CLI may hold of one answer.
MAX_CONTROL_REPLY = 1 << 30
_HEADER = struct.Struct(">I")
_MORE = 1 << 31
_PIECE = 1 << 20


def frames(value: Any, frame_size: int = MAX_CONTROL_FRAME) -> Iterator[bytes | memoryview]:
    """What to write for one value, in order: each frame's header, then its bytes in slices.

    The slices are views of one packed buffer (no copies) of at most 1 MiB, so a writer that
    drains after each holds little more than that in its buffer whatever the value's size.
    Packing happens before the first piece: a value that cannot be packed writes nothing.
    """
    data = memoryview(codec.pack(value))
    while True:
        part, data = data[:frame_size], data[frame_size:]
        yield _HEADER.pack(len(part) | (_MORE if data else 0))
        for start in range(0, len(part), _PIECE):
            yield part[start : start + _PIECE]
        if not data:
            return


def encode(value: Any) -> bytes:
    return b"".join(frames(value))


async def read_frame(reader: asyncio.StreamReader, max_size: int = MAX_CONTROL_FRAME) -> Any:
    """The next value (its frames reassembled), or ``None`` at a clean end of stream."""
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            header = await reader.readexactly(_HEADER.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial or parts:
                raise DecodeError("truncated frame header") from exc
            return None
        size, more = _size(header, total, max_size)
        try:
            parts.append(await reader.readexactly(size))
        except asyncio.IncompleteReadError as exc:
            raise DecodeError("truncated frame") from exc
        total += size
        if not more:
            return codec.unpack(parts[0] if len(parts) == 1 else b"".join(parts), max_size=max_size)


def recv_frame(sock: socket.socket, max_size: int = MAX_CONTROL_FRAME) -> Any:
    """Blocking read of one value (the CLI side); raises ``ConnectionError`` at end of stream."""
    data = bytearray()
    more = True
    while more:
        size, more = _size(_recv_exactly(sock, _HEADER.size), len(data), max_size)
        data += _recv_exactly(sock, size)
    return codec.unpack(bytes(data), max_size=max_size)


def _size(header: bytes | bytearray, total: int, max_size: int) -> tuple[int, bool]:
    """The length of the frame this header opens, and whether another frame follows it."""
    (word,) = _HEADER.unpack(header)
    size, more = word & ~_MORE, bool(word & _MORE)
    if size > MAX_CONTROL_FRAME:
        raise DecodeError(f"control frame of {size} bytes is too large")
    if total + size > max_size:
        raise DecodeError(f"control message of more than {max_size} bytes is too large")
    return size, more


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], min(size - got, _PIECE))
        if not count:
            raise ConnectionError("the master closed the control connection")
        got += count
    return data
