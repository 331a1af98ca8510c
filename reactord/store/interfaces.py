"""The storage the master's parts reach, as small typed interfaces (``typing.Protocol``).

The embedded master implements each with SQLite (or files, for keys). The reactor, the
action dispatcher, the fleet view and the control operations are written against these, and
the contract suites in ``tests/contracts/`` run against every implementation. Cluster mode
(docs/cluster.md) keeps these implementations as each master's own replica: every master
applies the engine's event stream to them in the same order, so it needs no second
implementation; what masters share goes through ``reactord.cluster``.

What crosses them is plain: events, records, and ``Writes``, which are opaque: a backend's
stores produce them (the state table's rows, the rule state's rows, the action intents, the
webhook dedupe keys) and the same backend's event log applies them in the transaction of
the events they go with. That is the only way rule state is written: with the event (or the
tick) that changed it, never on its own.

- ``EventLog``: the log, its ordering (by id), its dedupe state per (source, epoch), retention
- ``FleetState``: the state table, the latest event of every (source, tag)
- ``RuleStore``: rule state rows (throttles, windows, holds) as plain values
- ``ActionLog``: the reactor's decisions, action intents (the outbox) and dead letters
- ``KeyStore``: minion keys and their states
- ``Presence``: the minion registry: grains, version, functions, presence, last seen
- ``Ownership``: which sources this master processes (the embedded master owns them all)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from reactord.protocol.events import Event
from reactord.store.audit import DeadLetter
from reactord.store.eventlog import EventQuery, Writes
from reactord.store.minions import MinionRecord


class EventLog(Protocol):
    """Events in id order (ids are made when events arrive, so id order is arrival order)."""

    def delivery(self) -> dict[tuple[str, str], int]:
        """How far each (source, epoch) was logged: the dedupe state, as durable as the log."""
        ...

    def append(
        self,
        events: list[Event],
        delivery: dict[tuple[str, str], int],
        state_rows: list[tuple[Any, ...]] | None = None,
        decisions: dict[str, bytes] | None = None,
        writes: Writes | None = None,
    ) -> None:
        """Write events, the state rows, the dedupe state and ``writes`` all together or not."""
        ...

    def forget_epochs(self, source: str, keep: str) -> None: ...

    def probe(self) -> None:
        """A small write; raises ``StorageFull`` while nothing can be written."""
        ...

    def get(self, event_id: str) -> Event | None: ...

    def by_action(self, causation: str, action_id: str) -> Event | None: ...

    def previous(self, event: Event) -> Event | None: ...

    def latest_at(self, when: float) -> list[Event]: ...

    def oldest_received(self) -> float | None: ...

    def caused_by(self, event_id: str) -> list[Event]: ...

    def iterate(self, q: EventQuery, chunk: int = 64) -> Iterator[Event]: ...

    def count(self) -> int: ...

    def prune(self, *, max_age: float | None, max_count: int | None, now: float) -> int: ...

    def prune_oldest(self, excess: int, max_rows: int = 2000) -> int: ...


class FleetState(Protocol):
    """The latest event of every (source, tag); rows are written with their events."""

    def previous(self, source: str, tag: str) -> Event | None: ...

    def advance(
        self, events: Iterable[Event]
    ) -> tuple[list[tuple[Event, Event | None]], list[tuple[Any, ...]]]:
        """Each event with the one it follows, and the rows for the events' transaction."""
        ...

    def forget(self, events: Iterable[Event]) -> None:
        """These events were not written: drop what ``advance`` remembered of them."""
        ...

    def current(self) -> list[Event]: ...

    def empty(self) -> bool: ...

    def rebuild(self) -> int:
        """Make the table again from the event log; how many rows it has."""
        ...

    def prune(self, before: float) -> int: ...


class RuleStore(Protocol):
    """Rule state rows: (kind, rule, key, plain value); None deletes a row."""

    def rows(self) -> Iterator[tuple[str, str, str, Any]]: ...

    def read(self, kind: str, rule: str, key: str) -> Any: ...

    def writes(self, changes: Sequence[tuple[str, str, str, Any]]) -> Writes:
        """The writes recording ``changes``: they go with the event log's ``append``."""
        ...


class ActionLog(Protocol):
    """Decisions, action intents (each with its idempotency key) and dead letters."""

    def record_decisions(
        self, rows: Sequence[tuple[str, str, bool, str | None, float, str | None]]
    ) -> None: ...

    def decisions(self, event_id: str) -> list[dict[str, Any]]: ...

    def intent_writes(
        self,
        actions: list[tuple[Any, ...]],
        decisions: Sequence[tuple[str, str, bool, str | None, float, str | None]] = (),
    ) -> Writes:
        """Action intents (and later decisions) for the transaction that decided them."""
        ...

    def add_action(
        self,
        action_id: str,
        event_id: str,
        rule: str,
        idx: int,
        kind: str,
        label: str,
        now: float,
        params: dict[str, Any] | None,
        replay: str | None,
    ) -> None:
        """One action intent written now (a dead letter's retry)."""
        ...

    def add_actions(self, rows: list[tuple[Any, ...]]) -> None: ...

    def action_key(self, action_id: str) -> str | None: ...

    def unfinished(self) -> list[dict[str, Any]]:
        """Actions a stopped master left pending, running or between tries, oldest first."""
        ...

    def update_action(self, action_id: str, **fields: Any) -> None: ...

    def actions_for(self, event_id: str) -> list[dict[str, Any]]: ...

    def action_params(self, action_id: str) -> dict[str, Any] | None: ...

    def add_dead(self, letter: DeadLetter) -> None: ...

    def dead_letters(self, status: str | None = "open") -> list[DeadLetter]: ...

    def dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    def update_dead(self, letter_id: str, *, status: str, error: str, attempts: int, now: float) -> None: ...

    def count_dead(self) -> int: ...

    def flush(self) -> None: ...

    def try_flush(self) -> bool: ...

    def prune(self, before: float) -> int: ...


class KeyEntry(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def key(self) -> bytes: ...

    @property
    def finger(self) -> str: ...


class KeyStore(Protocol):
    """Minion keys by state: pending, accepted, rejected, denied; one accepted key per id."""

    def lookup(self, key: bytes) -> KeyEntry | None: ...

    def accepted_id(self, key: bytes) -> str | None: ...

    def accepted_key(self, minion_id: str) -> bytes | None: ...

    def state_of(self, minion_id: str) -> str | None: ...

    def listing(self) -> dict[str, list[str]]: ...

    def entries(self, minion_id: str | None = None) -> Sequence[KeyEntry]: ...

    def accepted_ids(self) -> list[str]: ...

    def register(self, minion_id: str, key: bytes) -> str:
        """Place a key a minion presented; its state."""
        ...

    def accept(self, minion_id: str) -> KeyEntry: ...

    def reject(self, minion_id: str) -> KeyEntry: ...

    def delete(self, minion_id: str) -> Sequence[KeyEntry]: ...


class Presence(Protocol):
    """The minions the master knows: what they said in their hello, and their presence."""

    def get(self, minion_id: str) -> MinionRecord | None: ...

    def all(self) -> list[MinionRecord]: ...

    def ids(self) -> list[str]: ...

    def upsert_hello(
        self, minion_id: str, grains: dict[str, Any], version: str, functions: list[str], now: float
    ) -> MinionRecord: ...

    def touch(self, minion_id: str, now: float) -> None: ...

    def set_presence(self, minion_id: str, presence: str) -> None: ...

    def flush(self) -> None: ...

    def remove(self, minion_id: str) -> None: ...


class Ownership(Protocol):
    """Which sources this master processes. Cluster mode partitions sources among masters
    with leases; the embedded master owns every source."""

    @property
    def member(self) -> str: ...

    def owns(self, source: str) -> bool: ...

    def owner(self, source: str) -> str | None: ...


class EmbeddedOwnership:
    """The single master: every source is its own."""

    member = "embedded"

    def owns(self, source: str) -> bool:
        return True

    def owner(self, source: str) -> str | None:
        return self.member
