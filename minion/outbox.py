"""The durable outbox: every event a minion emits is written here before it is sent.

SQLite (WAL, ``synchronous=FULL``) in the minion's ``state_dir``, checked whole when opened
(a damaged file raises ``StorageDamaged`` before anything starts). Each event gets the next
``seq`` of this outbox's ``epoch`` (a random name made when the outbox is created). Events
stay until the master acknowledges them. The outbox is bounded: when full, ``drop_oldest``
drops the oldest unacknowledged events (counted and logged) or ``refuse`` refuses new ones.

A full disk is not fatal. ``append`` raises ``OutboxUnavailable`` and queues none of the
events. An acknowledgement moves ``low`` (the first seq not acknowledged) in memory first;
the rows below it are deleted when the disk allows (retried on later acks and appends),
in chunks, so that freeing a little space is enough to make progress.
A row left behind is never sent again by this process, and sent again after a restart it
is harmless: the master dedupes by (epoch, seq). A full-disk episode is logged once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minion.errors import MinionError, OutboxUnavailable
from reactord.protocol.errors import StorageFull
from reactord.protocol.events import check_data
from reactord.protocol.sqlitefile import connect, storage_faults, write_transaction
from reactord.protocol.tags import localize

log = logging.getLogger("minion.outbox")

DROP_OLDEST, REFUSE = "drop_oldest", "refuse"

#: Rows per delete of acknowledged events: a small delete needs little write-ahead log.
PURGE_CHUNK = 1000
#: Seconds between two attempts to delete acknowledged rows after one failed for lack of space.
PURGE_RETRY = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, time REAL NOT NULL,
    data BLOB NOT NULL, causation TEXT
);
"""


class OutboxFull(MinionError):
    """The outbox is full and its policy is ``refuse``."""


class EventTooLarge(MinionError):
    """An event bigger than one wire message may carry: it could never be delivered."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    tag: str
    time: float
    data: bytes
    causation: str | None


class Outbox:
    def __init__(
        self,
        path: Path,
        minion_id: str,
        *,
        max_events: int,
        policy: str,
        max_event_bytes: int = 512 * 1024,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.minion_id = minion_id
        self.max_event_bytes = max_event_bytes
        self.max_events = max_events
        self.policy = policy
        self.clock = clock  # an event's time
        self.monotonic = monotonic  # pacing the purge retries
        self.conn = connect(path, synchronous="FULL")
        try:
            self._open()
        except BaseException:
            self.conn.close()
            raise
        #: Events refused because the disk was full (since start).
        self.refused = 0
        #: The current full-disk episode, None while writes succeed.
        self.unwritable: StorageFull | None = None
        self._retry_at = 0.0

    def _open(self) -> None:
        with storage_faults(self.path):
            self.conn.executescript(_SCHEMA)
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        defaults = {"epoch": os.urandom(8).hex(), "next_seq": "1", "dropped": "0"}
        missing = {key: value for key, value in defaults.items() if key not in meta}
        if missing:  # a new outbox (or one whose creation was cut short)
            with write_transaction(self.conn, self.path):
                self.conn.executemany("INSERT INTO meta VALUES (?, ?)", list(missing.items()))
            meta.update(missing)
        self.epoch = str(meta["epoch"])
        self.next_seq = int(meta["next_seq"])
        self.dropped = int(meta["dropped"])
        with storage_faults(self.path):
            first = self.conn.execute("SELECT MIN(seq) FROM outbox").fetchone()[0]
        #: The first seq not acknowledged (nor dropped): what is delivered from.
        self.low = int(first) if first is not None else self.next_seq
        # The first seq still stored: rows in [_held, low) are acknowledged, left to delete.
        self._held = self.low

    @property
    def depth(self) -> int:
        """Events held and not yet acknowledged."""
        return self.next_seq - self.low

    def append(
        self, events: Iterable[tuple[str, dict[str, Any]]], *, causation: str | None = None
    ) -> list[int]:
        """Write events (tag, data) durably, in one transaction; return their seqs.

        Tags are put under ``minion/<id>/``. Raises ``OutboxFull`` when the policy is
        ``refuse`` and they do not fit; with ``drop_oldest`` the oldest are dropped instead.
        Raises ``OutboxUnavailable`` when the disk is full: then none of them was queued.
        """
        now = self.clock()
        rows = []
        seq = self.next_seq
        for tag, data in events:
            packed = check_data(data)  # EncodeError: an event no master would take
            if len(packed) + len(tag) > self.max_event_bytes:
                raise EventTooLarge(
                    f"an event of {len(packed)} bytes is larger than {self.max_event_bytes}, the most one "
                    "message carries (max_message_size / 2): it could never be delivered"
                )
            rows.append((seq, localize(self.minion_id, tag), now, packed, causation))
            seq += 1
        if not rows:
            return []
        overflow = max(0, self.depth + len(rows) - self.max_events)
        if overflow and self.policy == REFUSE:
            raise OutboxFull(
                f"the outbox holds {self.depth} of {self.max_events} events; refusing {len(rows)} more"
            )
        self.purge()  # acknowledged rows a full disk left behind go first: their space is reused
        low = self.low + overflow
        try:
            with write_transaction(self.conn, self.path):
                self.conn.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", rows)
                if overflow:
                    self.conn.execute("DELETE FROM outbox WHERE seq < ?", (low,))
                    self.conn.execute(
                        "UPDATE meta SET value=? WHERE key='dropped'", (str(self.dropped + overflow),)
                    )
                self.conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(seq),))
        except StorageFull as exc:
            self.refused += len(rows)
            self._unwritable(exc)
            raise OutboxUnavailable(str(self.path)) from exc
        self.next_seq = seq
        if overflow:
            self.low = self._held = low
            self.dropped += overflow
            log.warning(
                "outbox full (%d events): dropped the %d oldest undelivered events (%d in all)",
                self.max_events,
                overflow,
                self.dropped,
            )
        if self.unwritable is not None and self._held >= self.low:
            log.warning("%s can be written again: events are queued again", self.path)
            self.unwritable = None
        return [r[0] for r in rows]

    def base(self) -> int:
        """The lowest seq not acknowledged (the next seq when there is none)."""
        return self.low

    def read(self, after: int, limit: int) -> list[Pending]:
        """Up to ``limit`` unacknowledged events after seq ``after``, in order."""
        with storage_faults(self.path):
            rows = self.conn.execute(
                "SELECT seq, tag, time, data, causation FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (max(after, self.low - 1), limit),
            ).fetchall()
        return [Pending(*row) for row in rows]

    def ack(self, seq: int) -> int:
        """Forget every event up to ``seq``; return how many that was.

        Never fails for lack of space: the rows are then deleted later (``purge``).
        """
        upto = min(seq + 1, self.next_seq)
        if upto <= self.low:
            return 0
        count = upto - self.low
        self.low = upto
        self.purge()
        return count

    @property
    def purge_pending(self) -> bool:
        """Acknowledged rows are still stored (a full disk kept them from being deleted)."""
        return self._held < self.low

    def purge(self) -> None:
        """Delete the acknowledged rows still stored; after a failure, at most every PURGE_RETRY s.

        A delete of many rows writes about as much to the write-ahead log as the rows hold,
        so it goes in chunks: each needs little room, and the log's space is reused after
        each checkpoint. With everything acknowledged the table is simply cleared.
        """
        if self._held >= self.low or self.monotonic() < self._retry_at:
            return
        try:
            while self._held < self.low:
                with storage_faults(self.path):
                    if self.low >= self.next_seq:
                        # Clearing the table frees its pages without writing them to the log
                        # again, which even a full disk allows most often.
                        self.conn.execute("DELETE FROM outbox")
                        self._held = self.low
                    else:
                        upto = min(self.low, self._held + PURGE_CHUNK)
                        self.conn.execute("DELETE FROM outbox WHERE seq < ?", (upto,))
                        self._held = upto
        except StorageFull as exc:
            self._retry_at = self.monotonic() + PURGE_RETRY
            self._unwritable(exc)

    def _unwritable(self, exc: StorageFull) -> None:
        if self.unwritable is None:
            log.warning(
                "cannot write %s: disk full. The minion goes on: new events are refused (event send "
                "fails, beacon reports are counted as errors), acknowledged events are deleted later; "
                "all resumes by itself once there is space (%s)",
                self.path,
                exc.__cause__ or exc,
            )
        self.unwritable = exc

    def close(self) -> None:
        self.conn.close()
