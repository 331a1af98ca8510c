"""The event log: every accepted event, appended in batches, with retention by age, count and bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reactord.protocol import codec
from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor
from reactord.protocol.tags import literal_prefix, tag_matches
from reactord.store.database import Database
from reactord.store.database import Writes as Writes  # the type of append's writes, also from here
from reactord.store.statetable import StateTable

_COLUMNS = "id, tag, source, time, received, epoch, seq, causation, depth, data, action"
_INSERT = f"INSERT INTO events ({_COLUMNS}, decisions) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def _row(event: Event, decisions: bytes | None) -> tuple[Any, ...]:
    return (
        event.id,
        event.tag,
        event.source,
        event.time,
        event.received,
        event.epoch,
        event.seq,
        event.causation,
        event.depth,
        event.packed_data(),
        event.action,
        decisions,
    )


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        id=row[0],
        tag=row[1],
        source=row[2],
        time=row[3],
        received=row[4],
        epoch=row[5],
        seq=row[6],
        causation=row[7],
        depth=row[8],
        data=codec.unpack(row[9], max_size=1 << 30),
        action=row[10],
    )


@dataclass(frozen=True, slots=True)
class EventQuery:
    tag: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    newest_first: bool = True


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def delivery(self) -> dict[tuple[str, str], int]:
        """How far each (source, epoch) was logged: the dedupe state, durable with the log."""
        rows = self.db.conn.execute("SELECT source, epoch, last_seq FROM delivery").fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def append(
        self,
        events: list[Event],
        delivery: dict[tuple[str, str], int],
        state_rows: list[tuple[Any, ...]] | None = None,
        decisions: dict[str, bytes] | None = None,
        writes: Writes | None = None,
    ) -> None:
        """Write events (with the reactor's decisions on them), the state rows, the delivery
        state they advance and what the reactor decided with them (rule state, the actions it
        queued: ``writes``), in one transaction: after a crash, the log and the reactor agree."""
        now = time.time()
        decided = decisions or {}
        with self.db.transaction() as conn:
            conn.executemany(_INSERT, [_row(e, decided.get(e.id)) for e in events])
            if state_rows:
                conn.executemany(StateTable.SQL, state_rows)
            for sql, rows in writes or ():
                conn.executemany(sql, rows)
            if delivery:
                conn.executemany(
                    "INSERT INTO delivery (source, epoch, last_seq, updated) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (source, epoch) DO UPDATE SET last_seq=excluded.last_seq,"
                    " updated=excluded.updated",
                    [(s, e, seq, now) for (s, e), seq in delivery.items()],
                )

    def forget_epochs(self, source: str, keep: str) -> None:
        with self.db.writing() as conn:
            conn.execute("DELETE FROM delivery WHERE source=? AND epoch<>?", (source, keep))

    def probe(self) -> None:
        """A small write (``StorageFull`` if even that fails): is the database writable again?"""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)", (str(time.time()),))

    def by_action(self, causation: str, action_id: str) -> Event | None:
        """The event a ``fire`` action made, if it made one (how a resumed action knows it ran):
        found among the events of its cause, through the causation index."""
        row = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE causation=? AND action=?", (causation, action_id)
        ).fetchone()
        return _event(row) if row else None

    def get(self, event_id: str) -> Event | None:
        row = self.db.conn.execute(f"SELECT {_COLUMNS} FROM events WHERE id=?", (event_id,)).fetchone()
        return _event(row) if row else None

    def previous(self, event: Event) -> Event | None:
        """The event of the same source and tag logged just before ``event``."""
        row = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE source=? AND tag=? AND id<? ORDER BY id DESC LIMIT 1",
            (event.source, event.tag, event.id),
        ).fetchone()
        return _event(row) if row else None

    def latest_at(self, when: float) -> list[Event]:
        """The latest event of each (source, tag) received at or before ``when``: the past state.

        Job events are left out, as they are from the live state table: one tag per job.
        """
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE id IN"
            " (SELECT MAX(id) FROM events WHERE id < ? AND tag NOT LIKE 'reactor/job/%'"
            " GROUP BY source, tag) ORDER BY source, tag",
            (id_floor(when + 0.001),),
        ).fetchall()
        return [_event(r) for r in rows]

    def oldest_received(self) -> float | None:
        row = self.db.conn.execute("SELECT received FROM events ORDER BY id LIMIT 1").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def caused_by(self, event_id: str) -> list[Event]:
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE causation=? ORDER BY id", (event_id,)
        ).fetchall()
        return [_event(r) for r in rows]

    def query(self, q: EventQuery) -> list[Event]:
        return list(self.iterate(q))

    def iterate(self, q: EventQuery, chunk: int = 64) -> Iterator[Event]:
        """Events matching ``q``, in log order (or newest first), ``q.limit`` at most (0: all).

        The log is read ``chunk`` rows at a time (fewer when the limit is near): a page of big
        events (1 MiB each at the default max_message_size) stays well under 100 MiB.
        """
        clauses: list[str] = []
        params: list[Any] = []
        if q.source is not None:
            clauses.append("source = ?")
            params.append(q.source)
        if q.since is not None:
            clauses.append("id >= ?")  # ids are made when events arrive: they order as `received`
            params.append(id_floor(q.since))
        if q.until is not None:
            clauses.append("id < ?")
            params.append(id_floor(q.until))
        if q.tag is not None and (prefix := literal_prefix(q.tag)):
            # candidates only (tags that start with what every match starts with): tag_matches
            # below decides, as everywhere a tag glob is taken
            clauses.append("tag GLOB ?")
            params.append(prefix.replace("[", "[[]") + "*")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if q.newest_first else "ASC"
        yielded, last = 0, None
        while True:
            page_where = where
            page_params = list(params)
            if last is not None:
                page_where += " AND " if where else "WHERE "
                page_where += "id < ?" if q.newest_first else "id > ?"
                page_params.append(last)
            rows = self.db.conn.execute(
                f"SELECT id, {_COLUMNS} FROM events {page_where} ORDER BY id {order} LIMIT ?",
                [*page_params, min(chunk, q.limit - yielded) if q.limit else chunk],
            ).fetchall()
            if not rows:
                return
            for row in rows:
                last = row[0]
                event = _event(row[1:])
                if q.tag is not None and not tag_matches(q.tag, event.tag):
                    continue
                yield event
                yielded += 1
                if q.limit and yielded >= q.limit:
                    return

    def count(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def prune(self, *, max_age: float | None, max_count: int | None, now: float) -> int:
        """Apply retention by age and count; return how many events were removed."""
        removed = 0
        with self.db.writing() as conn:
            if max_age:
                cutoff = now - max_age
                removed += conn.execute("DELETE FROM events WHERE id < ?", (id_floor(cutoff),)).rowcount
            if max_count:
                row = conn.execute(
                    "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (max_count,)
                ).fetchone()
                if row is not None:
                    removed += conn.execute("DELETE FROM events WHERE id <= ?", (row[0],)).rowcount
        return int(removed)

    def prune_oldest(self, excess: int, max_rows: int = 2000) -> int:
        """Drop the oldest events whose data add up to ``excess`` bytes (retention by bytes;
        at most ``max_rows`` at a time); return how many. SQLite reads their sizes without
        their data, and the delete is one short statement (its WAL is that much)."""
        total, cut = 0, None
        for event_id, size in self.db.conn.execute(
            "SELECT id, length(data) + 200 FROM events ORDER BY id LIMIT ?", (max_rows,)
        ):
            total, cut = total + size, event_id
            if total >= excess:
                break
        if cut is None:
            return 0
        with self.db.writing() as conn:
            return int(conn.execute("DELETE FROM events WHERE id <= ?", (cut,)).rowcount)
