"""The event log's contract: id order, the dedupe state, queries, retention, a restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor
from reactord.store.eventlog import EventQuery
from tests.contracts.conftest import Stores

_made = iter(range(1, 1 << 40))


def id_at(at: float, count: int = 1) -> list[str]:
    """Ids of events received at ``at`` (ids sort by arrival time; these are made up for it)."""
    return [id_floor(at)[:10] + f"{next(_made):016d}" for _ in range(count)]


def events(
    count: int, *, at: float = 1000.0, tag: str = "app/x", source: str = "web01", **kw: Any
) -> list[Event]:
    return [
        Event(id=i, tag=tag, source=source, time=at, data={"n": n}, received=at, epoch="e1", seq=n + 1, **kw)
        for n, i in enumerate(id_at(at, count))
    ]


def test_events_come_back_in_id_order_newest_first_or_not(backend: Callable[[], Stores]) -> None:
    log = backend().events
    first, second = events(3, at=1000.0), events(2, at=2000.0, tag="app/y")
    log.append(second, {})  # written out of order: the order is the ids', not the writes'
    log.append(first, {})
    ids = [e.id for e in first + second]
    assert [e.id for e in log.iterate(EventQuery(limit=0, newest_first=False))] == ids
    assert [e.id for e in log.iterate(EventQuery(limit=2))] == ids[::-1][:2]
    assert [e.id for e in log.iterate(EventQuery(tag="app/y", limit=0, newest_first=False))] == ids[3:]
    assert [e.id for e in log.iterate(EventQuery(since=1500.0, limit=0, newest_first=False))] == ids[3:]
    assert [e.id for e in log.iterate(EventQuery(until=1500.0, limit=0, newest_first=False))] == ids[:3]
    assert log.count() == 5 and log.get(ids[1]) == first[1] and log.get("nope") is None


def test_the_dedupe_state_is_written_with_the_events_and_survives_a_restart(
    backend: Callable[[], Stores],
) -> None:
    stores = backend()
    stores.events.append(events(3), {("web01", "e1"): 3})
    stores.events.append(events(1, source="web02"), {("web02", "e9"): 1})
    stores.events.forget_epochs("web01", keep="e2")  # a new epoch: the old one's state goes
    stores.close()
    again = backend().events
    assert again.delivery() == {("web02", "e9"): 1}
    assert again.count() == 4


def test_causes_previous_and_the_past_state(backend: Callable[[], Stores]) -> None:
    log = backend().events
    cause = events(1, at=1000.0)[0]
    made = events(2, at=1001.0, tag="app/z", causation=cause.id, depth=1)
    log.append([cause], {})
    log.append(made, {})
    assert [e.id for e in log.caused_by(cause.id)] == [e.id for e in made]
    assert log.previous(made[1]) == made[0] and log.previous(made[0]) is None
    assert {e.tag: e.id for e in log.latest_at(1000.5)} == {"app/x": cause.id}
    assert {e.tag: e.id for e in log.latest_at(5000.0)} == {"app/x": cause.id, "app/z": made[1].id}
    assert log.oldest_received() == 1000.0


def test_retention_by_age_count_and_oldest_first(backend: Callable[[], Stores]) -> None:
    log = backend().events
    log.append(events(4, at=1000.0), {})
    newer = events(4, at=2000.0)
    log.append(newer, {})
    assert log.prune(max_age=1500.0, max_count=None, now=3000.0) == 4  # older than 1500 s
    assert log.count() == 4
    assert log.prune(max_age=None, max_count=3, now=3000.0) == 1  # the oldest goes first
    assert log.prune_oldest(1) == 1  # enough bytes for one event: the oldest one
    assert [e.id for e in log.iterate(EventQuery(limit=0, newest_first=False))] == [e.id for e in newer[2:]]


def test_writes_from_other_stores_go_in_the_events_transaction(backend: Callable[[], Stores]) -> None:
    stores = backend()
    batch = events(2)
    _, rows = stores.fleet.advance(batch)
    changes = [("throttle", "r1", "web01", 1000.0)]
    stores.events.append(batch, {("web01", "e1"): 2}, rows, None, stores.rules.writes(changes))
    stores.close()
    again = backend()
    assert [e.id for e in again.fleet.current()] == [batch[1].id]
    assert list(again.rules.rows()) == changes
    assert again.events.delivery() == {("web01", "e1"): 2}
