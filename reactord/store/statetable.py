"""The state table: the latest event of every source and tag."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from reactord.protocol import codec
from reactord.protocol.events import Event
from reactord.store.database import Database

#: Tags that name one occurrence (a job), not the state of a thing: kept out of the state table.
UNSTATEFUL = "reactor/job/"
#: An event whose packed data is larger than this is not cached (it is read back when needed).
CACHE_MAX_EVENT = 64 * 1024
#: Events from webhooks: their source is ``webhook/<endpoint>``, set by the master.
WEBHOOK_SOURCE = "webhook/"


def clears(source: str, data: Any) -> bool:
    """Whether an event ends the state of its (source, tag) instead of becoming it: an event
    from a webhook whose ``data.status`` is ``resolved`` (a resolved Alertmanager alert, one
    tag per alert). A rule on the event alone, so that the table rebuilt from the log agrees."""
    return source.startswith(WEBHOOK_SOURCE) and isinstance(data, dict) and data.get("status") == "resolved"


def cleared(events: Iterable[Event]) -> list[tuple[str, str]]:
    """The (source, tag) rows to delete with ``events``: those whose last event ``clears``."""
    last: dict[tuple[str, str], bool] = {}
    for event in events:
        if event.source.startswith(WEBHOOK_SOURCE) and not event.tag.startswith(UNSTATEFUL):
            last[(event.source, event.tag)] = clears(event.source, event.data)
    return [key for key, clear in last.items() if clear]


def cache_weight(event: Event) -> int:
    """What one cached event costs in memory, roughly: the unpacked data takes a few times the
    packed bytes, plus the envelope and the cache's own entry."""
    return 600 + 4 * len(event.packed_data())


class StateTable:
    """The latest event of every (source, tag); the most recent ones cached in memory.

    The cache is bounded by count and by bytes (``cache_bytes``, by ``cache_weight``); events
    with large data are never cached, so no sender can grow the master's memory through it.
    """

    def __init__(self, db: Database, cache_size: int = 100_000, cache_bytes: int = 64 << 20) -> None:
        self.db = db
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[str, str], Event] = OrderedDict()
        self.cached_bytes = 0

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
            packed=row[3],
        )
        self._remember(event)
        return event

    def _remember(self, event: Event) -> None:
        """Cache ``event`` (every event passes here: kept cheap). Cached events always carry
        their packed data, whose length is their weight."""
        key = (event.source, event.tag)
        if event.packed is None:
            event = replace(event, packed=event.packed_data())
        size = len(event.packed)  # type: ignore[arg-type]
        cache = self._cache
        old = cache.pop(key, None)
        if old is not None:
            self.cached_bytes -= 600 + 4 * len(old.packed)  # type: ignore[arg-type]
        if size > CACHE_MAX_EVENT:
            return
        cache[key] = event
        self.cached_bytes += 600 + 4 * size  # cache_weight, inline
        if self.cached_bytes > self.cache_bytes or len(cache) > self.cache_size:
            while len(cache) > self.cache_size or self.cached_bytes > self.cache_bytes:
                _, gone = cache.popitem(last=False)
                self.cached_bytes -= 600 + 4 * len(gone.packed)  # type: ignore[arg-type]

    def _drop(self, key: tuple[str, str]) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self.cached_bytes -= 600 + 4 * len(old.packed)  # type: ignore[arg-type]

    def forget(self, events: Iterable[Event]) -> None:
        """Drop these events' (source, tag) from the cache: their write did not happen."""
        for event in events:
            self._drop((event.source, event.tag))

    def advance(
        self, events: Iterable[Event]
    ) -> tuple[list[tuple[Event, Event | None]], list[tuple[Any, ...]]]:
        """Each event with the one it follows (same source and tag), and the rows to write.

        The cache moves on at once; the rows must be written in the same transaction as
        the events themselves (``EventLog.append``), with the deletes of ``cleared(events)``:
        a (source, tag) whose last event ``clears`` it has no row to write, and none to keep.
        """
        pairs: list[tuple[Event, Event | None]] = []
        latest: dict[tuple[str, str], Event | None] = {}  # None: cleared
        for event in events:
            if event.tag.startswith(UNSTATEFUL):
                pairs.append((event, None))  # one tag per job: no state to keep
                continue
            key = (event.source, event.tag)
            # the one before it in this batch first: a large event is not cached, and the
            # table still holds the state from before the batch
            pairs.append((event, latest[key] if key in latest else self.previous(event.source, event.tag)))
            if clears(event.source, event.data):
                latest[key] = None
                self._drop(key)
            else:
                latest[key] = event
                self._remember(event)
        rows = [
            (e.source, e.tag, e.id, e.time, e.received, e.packed_data())
            for e in latest.values()
            if e is not None
        ]
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
        with self.db.writing() as conn:
            removed = conn.execute("DELETE FROM state WHERE received < ?", (before,)).rowcount
        if removed:
            self._clear()
        return int(removed)

    def _clear(self) -> None:
        self._cache.clear()
        self.cached_bytes = 0

    def data_bytes(self) -> int:
        """Bytes of event data the table holds (SQLite reads the sizes, not the data)."""
        return int(self.db.conn.execute("SELECT COALESCE(SUM(length(data)), 0) FROM state").fetchone()[0])

    def prune_oldest(self, excess: int, max_rows: int = 500) -> int:
        """Forget the rows updated longest ago whose data add up to ``excess`` bytes (at most
        ``max_rows``): retention by bytes, so that a sender that makes up new tags cannot fill
        the database with their latest values."""
        total, cut = 0, []
        for rowid, size in self.db.conn.execute(
            "SELECT rowid, length(data) + 200 FROM state ORDER BY received LIMIT ?", (max_rows,)
        ):
            total += size
            cut.append((rowid,))
            if total >= excess:
                break
        with self.db.writing() as conn:
            removed = conn.executemany("DELETE FROM state WHERE rowid=?", cut).rowcount
        if removed:
            self._clear()
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
            cleared = [
                (source, tag)
                for source, tag, blob in conn.execute(
                    "SELECT source, tag, data FROM state WHERE source LIKE ?", (WEBHOOK_SOURCE + "%",)
                )
                if clears(source, codec.unpack(blob, max_size=1 << 30))
            ]
            conn.executemany(self.CLEAR, cleared)
        self._clear()
        return int(self.db.conn.execute("SELECT COUNT(*) FROM state").fetchone()[0])

    SQL = (
        "INSERT INTO state (source, tag, event_id, time, received, data) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (source, tag) DO UPDATE SET event_id=excluded.event_id, time=excluded.time,"
        " received=excluded.received, data=excluded.data"
    )
    CLEAR = "DELETE FROM state WHERE source=? AND tag=?"
