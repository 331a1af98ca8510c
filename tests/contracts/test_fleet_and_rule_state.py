"""The state table's and the rule state's contracts: latest per (source, tag), clearing,
rebuilding from the log, rows that change only with an append, a restart."""

from __future__ import annotations

from collections.abc import Callable

from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor
from tests.contracts.conftest import Stores

_made = iter(range(1, 1 << 40))


def id_at(at: float, count: int = 1) -> list[str]:
    """Ids of events received at ``at`` (ids sort by arrival time; these are made up for it)."""
    return [id_floor(at)[:10] + f"{next(_made):016d}" for _ in range(count)]


def event(tag: str, source: str, at: float, **data: object) -> Event:
    return Event(id=id_at(at)[0], tag=tag, source=source, time=at, data=dict(data), received=at)


def test_the_latest_event_of_each_source_and_tag(backend: Callable[[], Stores]) -> None:
    stores = backend()
    a1, b1, a2 = (
        event("load", "web01", 1.0, v=1),
        event("load", "web02", 2.0, v=2),
        event("load", "web01", 3.0, v=3),
    )
    pairs, rows = stores.fleet.advance([a1, b1, a2])
    assert [(e.id, p.id if p else None) for e, p in pairs] == [(a1.id, None), (b1.id, None), (a2.id, a1.id)]
    stores.events.append([a1, b1, a2], {}, rows)
    assert {(e.source, e.data["v"]) for e in stores.fleet.current()} == {("web01", 3), ("web02", 2)}
    assert stores.fleet.previous("web01", "load") == a2
    stores.close()
    again = backend()
    assert {(e.source, e.data["v"]) for e in again.fleet.current()} == {("web01", 3), ("web02", 2)}


def test_job_events_have_no_row_and_a_resolved_alert_clears_its_row(backend: Callable[[], Stores]) -> None:
    stores = backend()
    job = event("reactor/job/J1/new", "master", 1.0)
    firing = event("webhook/am/Disk/f1", "webhook/am", 2.0, status="firing")
    stores.events.append([job, firing], {}, stores.fleet.advance([job, firing])[1])
    assert [e.tag for e in stores.fleet.current()] == ["webhook/am/Disk/f1"]
    resolved = event("webhook/am/Disk/f1", "webhook/am", 3.0, status="resolved")
    _, rows = stores.fleet.advance([resolved])
    assert rows == []  # nothing to write: the row goes (the pipeline deletes it with the events)
    stores.events.append([resolved], {})
    assert stores.fleet.rebuild() == 0  # made again from the log: the same answer


def test_forget_undoes_what_an_unwritten_advance_remembered(backend: Callable[[], Stores]) -> None:
    stores = backend()
    first = event("load", "web01", 1.0, v=1)
    stores.events.append([first], {}, stores.fleet.advance([first])[1])
    lost = event("load", "web01", 2.0, v=2)
    stores.fleet.advance([lost])  # its write failed:
    stores.fleet.forget([lost])
    assert stores.fleet.previous("web01", "load") == first


def test_rebuild_and_retention(backend: Callable[[], Stores]) -> None:
    stores = backend()
    old, new = event("a", "web01", 1.0), event("b", "web01", 100.0)
    stores.events.append([old, new], {}, stores.fleet.advance([old, new])[1])
    assert not stores.fleet.empty()
    assert stores.fleet.prune(before=50.0) == 1
    assert [e.tag for e in stores.fleet.current()] == ["b"]
    assert stores.fleet.rebuild() == 2  # the log still has both


def test_rule_state_rows_round_trip_and_delete(backend: Callable[[], Stores]) -> None:
    stores = backend()
    changes = [
        ("throttle", "r1", "web01", 10.5),
        ("window", "r2", "web01", [1.0, 2.0]),
        ("hold", "r3", "web02", {"since": 1.0, "fired": False, "event": {"id": "E", "tag": "t"}}),
    ]
    stores.events.append([], {}, None, None, stores.rules.writes(changes))
    assert stores.rules.read("window", "r2", "web01") == [1.0, 2.0]
    stores.events.append([], {}, None, None, stores.rules.writes([("throttle", "r1", "web01", None)]))
    assert stores.rules.read("throttle", "r1", "web01") is None
    stores.close()
    assert sorted(backend().rules.rows()) == sorted(changes[1:])


def test_rule_state_is_written_only_with_a_transaction(backend: Callable[[], Stores]) -> None:
    stores = backend()
    writes = stores.rules.writes([("throttle", "r1", "k", 1.0)])
    assert list(stores.rules.rows()) == []  # making the writes writes nothing
    stores.events.append([], {}, None, None, writes)
    assert list(stores.rules.rows()) == [("throttle", "r1", "k", 1.0)]
