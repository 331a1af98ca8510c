"""The state table (latest event per source and tag) and the persisted rule state."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from reactord.protocol import codec
from reactord.protocol.events import Event
from reactord.reactor.state import Hold, RuleState
from reactord.store.database import Database

#: Tags that name one occurrence (a job), not the state of a thing: kept out of the state table.
UNSTATEFUL = "reactor/job/"


class StateTable:
    """The latest event of every (source, tag); the most recent ones cached in memory."""

    def __init__(self, db: Database, cache_size: int = 100_000) -> None:
        self.db = db
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], Event] = OrderedDict()

    def previous(self, source: str, tag: str) -> Event | None:
        key = (source, tag)
        event = self._cache.get(key)
        if event is not None:
            self._cache.move_to_end(key)
            return event
        row = self.db.conn.execute(
            "SELECT event_id, time, received, data FROM state WHERE source=? AND tag=?", key
        ).fetchone()
        if row is None:
            return None
        event = Event(
            id=row[0],
            tag=tag,
            source=source,
            time=row[1],
            received=row[2],
            data=codec.unpack(row[3], max_size=1 << 30),
        )
        self._remember(event)
        return event

    def _remember(self, event: Event) -> None:
        key = (event.source, event.tag)
        self._cache[key] = event
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def advance(
        self, events: Iterable[Event]
    ) -> tuple[list[tuple[Event, Event | None]], list[tuple[Any, ...]]]:
        """Each event with the one it follows (same source and tag), and the rows to write.

        The cache moves on at once; the rows must be written in the same transaction as
        the events themselves (``EventLog.append``).
        """
        pairs: list[tuple[Event, Event | None]] = []
        latest: dict[tuple[str, str], Event] = {}
        for event in events:
            if event.tag.startswith(UNSTATEFUL):
                pairs.append((event, None))  # one tag per job: no state to keep
                continue
            pairs.append((event, self.previous(event.source, event.tag)))
            latest[(event.source, event.tag)] = event
            self._remember(event)
        rows = [(e.source, e.tag, e.id, e.time, e.received, e.packed_data()) for e in latest.values()]
        return pairs, rows

    def current(self) -> list[Event]:
        """Every row of the state table: the latest event of each (source, tag)."""
        rows = self.db.conn.execute(
            "SELECT source, tag, event_id, time, received, data FROM state ORDER BY source, tag"
        ).fetchall()
        return [
            Event(
                id=r[2],
                tag=r[1],
                source=r[0],
                time=r[3],
                received=r[4],
                data=codec.unpack(r[5], max_size=1 << 30),
            )
            for r in rows
        ]

    def prune(self, before: float) -> int:
        """Forget rows not updated since ``before`` (with the event log's retention)."""
        removed = self.db.conn.execute("DELETE FROM state WHERE received < ?", (before,)).rowcount
        if removed:
            self._cache.clear()
        return int(removed)

    def empty(self) -> bool:
        return self.db.conn.execute("SELECT 1 FROM state LIMIT 1").fetchone() is None

    def rebuild(self) -> int:
        """Fill the table again from the event log (after it was lost); return the rows written."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM state")
            conn.execute(
                "INSERT INTO state (source, tag, event_id, time, received, data)"
                " SELECT source, tag, id, time, received, data FROM events"
                " WHERE id IN (SELECT MAX(id) FROM events"
                " WHERE tag NOT LIKE 'reactor/job/%' GROUP BY source, tag)"
            )
        self._cache.clear()
        return int(self.db.conn.execute("SELECT COUNT(*) FROM state").fetchone()[0])

    SQL = (
        "INSERT INTO state (source, tag, event_id, time, received, data) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (source, tag) DO UPDATE SET event_id=excluded.event_id, time=excluded.time,"
        " received=excluded.received, data=excluded.data"
    )


class RuleStateStore:
    """Writes the rule state's changes, and reads it back at start."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, state: RuleState) -> None:
        for rule, key, kind, blob in self.db.conn.execute("SELECT rule, key, kind, value FROM rule_state"):
            value = codec.unpack(blob, max_size=1 << 30)
            if kind == "throttle":
                state.throttles.put((rule, key), float(value))
            elif kind == "window":
                state.windows.put((rule, key), deque(value))
            elif kind == "hold":
                event = Event(**value["event"])
                state.holds.put((rule, key), Hold(value["since"], event, value["fired"]))
        for table in state.kinds().values():
            table.dirty.clear()

    def flush(self, state: RuleState) -> int:
        writes, deletes = [], []
        for kind, table in state.kinds().items():
            for (rule, key), value in table.take_dirty():
                if value is None:
                    deletes.append((rule, key, kind))
                else:
                    writes.append((rule, key, kind, codec.pack(_plain(kind, value))))
        if writes or deletes:
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM rule_state WHERE rule=? AND key=? AND kind=?", deletes)
                conn.executemany("INSERT OR REPLACE INTO rule_state VALUES (?, ?, ?, ?)", writes)
        return len(writes) + len(deletes)


def _plain(kind: str, value: Any) -> Any:
    if kind == "window":
        return list(value)
    if kind == "hold":
        e = value.event
        return {
            "since": value.since,
            "fired": value.fired,
            "event": {
                "id": e.id,
                "tag": e.tag,
                "source": e.source,
                "time": e.time,
                "data": e.data,
                "seq": e.seq,
                "epoch": e.epoch,
                "causation": e.causation,
                "depth": e.depth,
                "received": e.received,
            },
        }
    return value
