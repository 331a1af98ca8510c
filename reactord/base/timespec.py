"""Points in time as operators give them: ISO 8601, ``10m`` (ago), ``now``, or epoch seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from reactord.protocol.durations import parse_duration
from reactord.protocol.events import valid_time


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch for ``text``; raises ``ValueError`` saying what is accepted.

    ``2026-11-26T13:00:00Z`` (a time without a zone is UTC), ``2026-11-26``, ``90s`` / ``10m`` /
    ``2h`` / ``1d`` (that long ago), ``now``, or a number of seconds since the epoch.
    """
    now = time.time() if now is None else now
    value = text.strip()
    if value == "now":
        return _checked(text, now)
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        return _checked(text, number if number > 1e8 else now - number)  # small numbers: seconds ago
    try:
        return _checked(text, now - parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: use ISO 8601 (2026-11-26T13:00:00Z), a duration ago (10m, 2h), "
            "'now' or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _checked(text, parsed.timestamp())


def _checked(text: str, when: float) -> float:
    if not valid_time(when):
        raise ValueError(f"bad time {text!r}: it must fall between 1970 and the year 3000")
    return when
