"""Strict readers over a decoded message body: each field read once, its type and range checked.

``reactord.protocol.messages`` reads every wire message through ``Body``: a field of the
wrong type, an integer that does not fit a signed 64-bit column, a time outside 1970..3000,
a duration out of range, nesting deeper than ``MAX_DATA_DEPTH`` or a field nobody read
(``done``) raises ``DecodeError`` naming the message kind and the field.
"""

from __future__ import annotations

from typing import Any

from reactord.protocol.errors import DecodeError
from reactord.protocol.events import INT64_MAX, INT64_MIN, MAX_DATA_DEPTH, data_depth_ok, valid_time
from reactord.protocol.tags import is_valid_minion_id


def fail(kind: str, why: str) -> DecodeError:
    return DecodeError(f"bad {kind!r} message: {why}")


class Body:
    """Strict reader over a message body: each field read once, with its type checked."""

    def __init__(self, kind: str, body: object) -> None:
        if not isinstance(body, dict):
            raise fail(kind, "body is not a map")
        self.kind = kind
        self.body = body
        self.seen: set[str] = set()

    def get(self, name: str, types: type | tuple[type, ...], default: Any = ...) -> Any:
        self.seen.add(name)
        if name not in self.body:
            if default is ...:
                raise fail(self.kind, f"missing field {name!r}")
            return default
        value = self.body[name]
        if isinstance(value, bool) and bool not in _as_tuple(types):
            raise fail(self.kind, f"field {name!r} has type bool")
        if not isinstance(value, types):
            raise fail(self.kind, f"field {name!r} has type {type(value).__name__}")
        return value

    def int64(self, name: str, low: int = INT64_MIN, default: Any = ...) -> int:
        """An integer field that fits a signed 64-bit column and is at least ``low``."""
        value = self.get(name, int, default)
        if not low <= value <= INT64_MAX:
            raise fail(self.kind, f"field {name!r} is out of range")
        return value  # type: ignore[no-any-return]

    def time(self, name: str, default: Any = ...) -> float:
        """A time: a finite number of seconds since 1970, before the year 3000."""
        value = self.get(name, _NUMBER, default)
        if not valid_time(value):
            raise fail(self.kind, f"field {name!r} is not a time between 1970 and 3000")
        return float(value)

    def seconds(self, name: str, low: float, high: float, default: Any = ...) -> float:
        """A duration: a finite number of seconds within [low, high]."""
        value = float(self.get(name, _NUMBER, default))
        if not low <= value <= high:  # also false for NaN
            raise fail(self.kind, f"field {name!r} must be between {low:g} and {high:g} seconds")
        return value

    def nested(self, name: str, types: type | tuple[type, ...], limit: int = MAX_DATA_DEPTH) -> Any:
        """A map or list field that nests at most ``limit`` levels (itself included)."""
        value = self.get(name, types)
        if not data_depth_ok(value, limit):
            raise fail(self.kind, f"field {name!r} nests deeper than {limit} levels")
        return value

    def minion_id(self, name: str = "id") -> str:
        value = self.get(name, str)
        if not is_valid_minion_id(value):
            raise fail(self.kind, f"field {name!r} is not a valid minion id")
        return value  # type: ignore[no-any-return]

    def done(self) -> None:
        extra = set(self.body) - self.seen
        if extra:
            raise fail(self.kind, f"unknown fields {sorted(extra)}")


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_NUMBER = (int, float)
