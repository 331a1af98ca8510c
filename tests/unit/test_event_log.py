"""The event log's view of the past, against a real database."""

from __future__ import annotations

from pathlib import Path

from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor
from reactord.store.database import Database
from reactord.store.eventlog import EventLog
from reactord.store.schema import MIGRATIONS


def _event(tag: str, source: str, at: float, **data: object) -> Event:
    # id_floor: the id of that very millisecond (new_id never goes back before ids made earlier)
    return Event(id=id_floor(at), tag=tag, source=source, time=at, data=dict(data), received=at)


def test_the_past_state_is_the_latest_event_of_each_source_and_tag_without_job_events(
    tmp_path: Path,
) -> None:
    log = EventLog(Database(tmp_path / "m.db", MIGRATIONS))
    log.append(
        [
            _event("minion/web01/beacon/load", "web01", 1000.0, load1=0.1),
            _event("reactor/job/J1/new", "master", 1000.5, fun="test.ping"),
            _event("minion/web01/beacon/load", "web01", 1001.0, load1=2.5),
            _event("reactor/job/J1/ret/web01", "web01", 1001.2, retcode=0),
            _event("minion/web02/beacon/load", "web02", 1002.0, load1=0.7),
        ],
        {},
    )
    at_1001 = log.latest_at(1001.5)
    assert [(e.source, e.tag, e.data) for e in at_1001] == [
        ("web01", "minion/web01/beacon/load", {"load1": 2.5}),
    ]
    assert [e.data["load1"] for e in log.latest_at(1000.0)] == [0.1]
    assert log.latest_at(999.0) == []
    assert {e.source for e in log.latest_at(2000.0)} == {"web01", "web02"}
