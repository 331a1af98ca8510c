"""What cluster mode changes in the master's own parts, without them knowing of the cluster:
the reactor's clock, and an outbox that reports what ended and what died.

This module does not import the NATS client: the master builds these before it knows
whether the engine can be reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reactord.cluster import records
from reactord.store.audit import AuditLog, DeadLetter

#: What a done record carries of an action, besides its status (``event show`` alike everywhere).
_SHARED_FIELDS = ("attempts", "started", "finished", "error", "result", "jid", "params")


class StreamClock:
    """The reactor's clock: while a batch from the stream is applied, the arrival time of its
    events (the same on every master, so throttles and windows decide alike); otherwise the
    wall clock (ticks, holds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.at: float | None = None

    def __call__(self) -> float:
        return self.clock() if self.at is None else self.at


class ReportingAuditLog(AuditLog):
    """The outbox, telling the cluster when an action has ended on this master, and its dead
    letters as they are made or retried."""

    on_end: Callable[[str, str, dict[str, Any]], None] | None = None
    on_dead: Callable[[DeadLetter], None] | None = None
    #: What was recorded of each action not ended yet (its done record carries it all).
    _so_far: dict[str, dict[str, Any]]

    def update_action(self, action_id: str, **fields: Any) -> None:
        recorded = {k: v for k, v in fields.items() if k in _SHARED_FIELDS}
        super().update_action(action_id, **fields)
        if self.on_end is None:
            return
        so_far = self.__dict__.setdefault("_so_far", {})
        so_far.setdefault(action_id, {}).update(recorded)
        status = fields.get("status")
        if status in records.ENDED:
            self.on_end(action_id, status, so_far.pop(action_id))

    def add_dead(self, letter: DeadLetter) -> None:
        super().add_dead(letter)
        if self.on_dead is not None:
            self.on_dead(letter)

    def update_dead(self, letter_id: str, *, status: str, error: str, attempts: int, now: float) -> None:
        super().update_dead(letter_id, status=status, error=error, attempts=attempts, now=now)
        letter = self.dead_letter(letter_id)
        if letter is not None and self.on_dead is not None:
            self.on_dead(letter)
