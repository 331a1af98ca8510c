"""The narrow interfaces shared by several areas of control operations (each area adds its own).

The master builds every area's parts once, from its own stores and services
(``registry.Parts``); an operation reaches the master only through them. So an operation can
be tested with a small fake, a clustered store can stand behind the same operations, and the
control package never imports the master: it imports values (events, jobs, dead letters),
never the daemon that holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from reactord.protocol.events import Event
    from reactord.protocol.messages import Return
    from reactord.store.audit import DeadLetter
    from reactord.store.eventlog import EventQuery
    from reactord.store.jobstore import JobRecord

#: The master's clock (``time.time`` unless a test injects another).
Clock = Callable[[], float]

#: The accepted, registered minions a target names: ``(target, target_type) -> ids``.
ResolveTarget = Callable[[str, str], list[str]]


class EventHistory(Protocol):
    """The event log, read only."""

    def get(self, event_id: str) -> Event | None: ...

    def caused_by(self, event_id: str) -> list[Event]: ...

    def iterate(self, q: EventQuery, chunk: int = ...) -> Iterator[Event]: ...

    def oldest_received(self) -> float | None: ...


class JobHistory(Protocol):
    """The recorded jobs and their returns, read only."""

    def get(self, jid: str) -> JobRecord | None: ...

    def recent(self, limit: int = ...) -> list[JobRecord]: ...

    def count_returns(self, jids: list[str]) -> dict[str, int]: ...

    def returns(self, jid: str) -> dict[str, Return]: ...

    def caused_by(self, event_id: str) -> list[JobRecord]: ...


class AuditTrail(Protocol):
    """What the reactor recorded: its decisions, its actions and their dead letters."""

    def decisions(self, event_id: str) -> list[dict[str, Any]]: ...

    def actions_for(self, event_id: str) -> list[dict[str, Any]]: ...

    def dead_letters(self, status: str | None = ...) -> list[DeadLetter]: ...

    def dead_letter(self, letter_id: str) -> DeadLetter | None: ...
