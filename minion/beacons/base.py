"""The beacon contract: a class that watches one thing and reports its state.

A beacon class takes its options (an ``Options`` reader: raise ``ValueError`` for a bad
one) in ``__init__`` and implements ``poll() -> list[Report]``, which may block (it runs
in a worker thread, with a timeout). Each report is one subject's current state; the tag
is ``minion/<id>/beacon/<name>[/<subject>]``. ``Report.state`` is the part that defines a
change for ``onchange`` (by default the whole data). Beacon state (the last hash seen, the
file offset read) lives in the instance, never in module globals. Document every option in
the class docstring.

The options every beacon has (interval, onchange, emit_at_start, enabled, timeout) are
handled by the runner, not by the beacon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from minion.options import Options

_SUBJECT_CHARS = re.compile(r"[^A-Za-z0-9_.:@=+,~%-]+")


@dataclass(frozen=True, slots=True)
class Report:
    subject: str | None
    data: dict[str, Any]
    state: Any = None  # what onchange compares; None means "all of data"

    def key(self) -> Any:
        return self.data if self.state is None else self.state


def subject(text: str) -> str:
    """A tag segment made from any text (a mount point, a URL, a file path)."""
    cleaned = _SUBJECT_CHARS.sub("_", text.strip("/")).strip("_")
    return cleaned[:64] or "root"


class Beacon(Protocol):
    """What the runner needs from a beacon."""

    default_interval: ClassVar[float]

    def __init__(self, options: Options) -> None: ...

    def poll(self) -> list[Report]: ...


def over(value: float, threshold: float | None) -> bool:
    return threshold is not None and value >= threshold
