"""JSON at the edges (CLI, database text columns, webhooks) for values that came as msgpack."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgpack


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(
        value, default=_default, ensure_ascii=False, indent=indent, separators=None if indent else (",", ":")
    )


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
