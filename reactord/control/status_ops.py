"""Control operations of the master's health: ``ping`` and ``status``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord import __version__
from reactord.base.errors import ControlError
from reactord.control.args import Args
from reactord.control.interfaces import Clock

if TYPE_CHECKING:
    from reactord.base.stats import Stats
    from reactord.store.minions import MinionRecord


class ActionQueue(Protocol):
    """The action outbox's load (the reactor's action dispatcher)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def queued(self) -> int: ...

    @property
    def running(self) -> int: ...

    @property
    def queued_bytes(self) -> int: ...

    @property
    def saturated(self) -> bool: ...


class StorageHealth(Protocol):
    """Whether the database can be written (the event pipeline knows: it writes)."""

    @property
    def storage_error(self) -> str | None: ...

    @property
    def storage_since(self) -> float: ...

    @property
    def held(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StatusParts:
    """What ``status`` reads of the master, live at each call (the metrics endpoint reads it
    too: it satisfies ``reactord.metrics.MasterReadings``)."""

    clock: Clock
    started: float
    master_finger: str
    stats: Stats
    minions: Callable[[], Iterable[MinionRecord]]
    key_listing: Callable[[], dict[str, list[str]]]
    database_bytes: Callable[[], int]
    events_logged: Callable[[], int]
    rules_loaded: Callable[[], int]
    dead_letters: Callable[[], int]
    actions: ActionQueue
    storage: StorageHealth
    budget_refused: Mapping[str, int]
    #: Cluster mode: what ``cluster status`` shows (None on a single master).
    cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None


async def ping(parts: StatusParts, args: Args) -> Any:
    return {"version": __version__, "uptime": parts.clock() - parts.started}


async def cluster_status(parts: StatusParts, args: Args) -> Any:
    """Members, partition owners, lag, the engine's version and its streams' health."""
    if parts.cluster is None:
        raise ControlError(
            "this master is not in a cluster (cluster: servers: in master.yaml; docs/cluster.md)",
            "not_clustered",
        )
    return await parts.cluster()


async def status(parts: StatusParts, args: Args) -> Any:
    """Everything an operator looks at first; minions are counted by presence (up, suspect,
    down always shown), keys by state."""
    now = parts.clock()
    by_presence: dict[str, int] = {"up": 0, "suspect": 0, "down": 0}
    for record in parts.minions():
        by_presence[record.presence] = by_presence.get(record.presence, 0) + 1
    actions, storage = parts.actions, parts.storage
    return {
        "version": __version__,
        "uptime": now - parts.started,
        "master_finger": parts.master_finger,
        "minions": by_presence,
        "keys": {state: len(ids) for state, ids in parts.key_listing().items()},
        "database_bytes": parts.database_bytes(),
        "events_logged": parts.events_logged(),
        "events_per_second": round(parts.stats.event_rate.per_second(now), 2),
        "rules_loaded": parts.rules_loaded(),
        "actions_in_flight": actions.in_flight,
        "actions": {
            "queued": actions.queued,
            "running": actions.running,
            "queued_bytes": actions.queued_bytes,
            "saturated": actions.saturated,
        },
        "storage": {
            "ok": storage.storage_error is None,
            "error": storage.storage_error,
            "since": storage.storage_since if storage.storage_error else None,
            "held_events": storage.held,
        },
        "budget_refused": dict(sorted(parts.budget_refused.items())),
        "dead_letters": parts.dead_letters(),
        "counters": parts.stats.snapshot(),
    }
