"""JSON at the edges (CLI, database text columns, webhooks) for values that came as msgpack."""

from __future__ import annotations

import base64
import json
import math
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


def to_json(value: Any, *, indent: int | None = None) -> str:
    """JSON for readers outside (the CLI's ``--json``, webhook bodies, a program's stdin).

    NaN and the infinities, which JSON has no numbers for (Python would write ``NaN``), are
    written as ``null``, as JavaScript's JSON.stringify does: a float from a minion never makes
    the text unreadable to a JSON parser.
    """
    return dumps(finite(value), indent=indent)


def finite(value: Any) -> Any:
    """``value`` with its NaN and infinite floats replaced by None; parts with none are not copied."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        changed = {k: w for k, v in value.items() if (w := finite(v)) is not v}
        return value | changed if changed else value
    if isinstance(value, (list, tuple)):
        items = [finite(v) for v in value]
        return items if any(w is not v for w, v in zip(items, value, strict=True)) else value
    return value
