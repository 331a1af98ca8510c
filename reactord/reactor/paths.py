"""Reading a value out of an event by path: ``data.disk.used``, ``source``, ``tag``, ``data.ips.0``.

A rule that matches several events (a correlation, a sequence, an absence, a fleet condition)
gives its actions each matched event by name: ``events.disk.data.used``, ``events.down.source``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from reactord.protocol.events import Event


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
ENVELOPE = ("id", "tag", "source", "time", "seq", "epoch", "causation", "depth", "data")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")


def validate_path(path: str, *, matched: bool = False) -> tuple[str, ...]:
    """Split a path; raise ``ValueError`` unless it starts with an envelope field (or, with
    ``matched``, for an action's templates, ``events.NAME.`` and one)."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise ValueError(f"bad path {path!r} (expected e.g. data.name, source, tag)")
    parts = tuple(path.split("."))
    if parts[0] == "events" and matched:
        if len(parts) < 3:
            raise ValueError(f"bad path {path!r}: expected events.NAME.FIELD (e.g. events.disk.data.used)")
        validate_path(".".join(parts[2:]))
        return parts
    if parts[0] not in ENVELOPE:
        raise ValueError(f"bad path {path!r}: it must start with one of {', '.join(ENVELOPE)}")
    if parts[0] != "data" and len(parts) > 1:
        raise ValueError(f"bad path {path!r}: only data has fields")
    return parts


def resolve(event: Event, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``event``, or ``MISSING``."""
    if parts[0] == "events":
        matched = event.matched.get(parts[1]) if event.matched else None
        return MISSING if matched is None else resolve(matched, parts[2:])
    value: Any = getattr(event, parts[0])
    for part in parts[1:]:
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value
