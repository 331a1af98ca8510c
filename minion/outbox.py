"""The durable outbox: every event a minion emits is written here before it is sent.

SQLite (WAL, ``synchronous=FULL``) in the minion's ``state_dir``. Each event gets the next
``seq`` of this outbox's ``epoch`` (a random name made when the outbox is created). Rows
stay until the master acknowledges them. The outbox is bounded: when full, ``drop_oldest``
drops the oldest unacknowledged events (counted and logged) or ``refuse`` refuses new ones.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minion.errors import MinionError
from reactord.protocol.events import check_data
from reactord.protocol.tags import localize

log = logging.getLogger("minion.outbox")

DROP_OLDEST, REFUSE = "drop_oldest", "refuse"


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
        self, path: Path, minion_id: str, *, max_events: int, policy: str, max_event_bytes: int = 512 * 1024
    ) -> None:
        self.minion_id = minion_id
        self.max_event_bytes = max_event_bytes
        self.max_events = max_events
        self.policy = policy
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS outbox (
                seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, time REAL NOT NULL,
                data BLOB NOT NULL, causation TEXT
            );
            """
        )
        row = self.conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row is None:
            self.epoch = os.urandom(8).hex()
            self.conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (self.epoch,))
            self.conn.execute("INSERT INTO meta VALUES ('next_seq', '1')")
            self.conn.execute("INSERT INTO meta VALUES ('dropped', '0')")
        else:
            self.epoch = row[0]
        self.next_seq = int(self._meta("next_seq"))
        self.dropped = int(self._meta("dropped"))
        self.depth = self.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def _meta(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0])

    def append(
        self, events: Iterable[tuple[str, dict[str, Any]]], *, causation: str | None = None
    ) -> list[int]:
        """Write events (tag, data) durably, in one transaction; return their seqs.

        Tags are put under ``minion/<id>/``. Raises ``OutboxFull`` when the policy is
        ``refuse`` and they do not fit; with ``drop_oldest`` the oldest are dropped instead.
        """
        now = time.time()
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
        overflow = self.depth + len(rows) - self.max_events
        if overflow > 0 and self.policy == REFUSE:
            raise OutboxFull(
                f"the outbox holds {self.depth} of {self.max_events} events; refusing {len(rows)} more"
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", rows)
            dropped = 0
            if overflow > 0:
                cut = self.conn.execute(
                    "SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?", (overflow - 1,)
                ).fetchone()[0]
                dropped = self.conn.execute("DELETE FROM outbox WHERE seq <= ?", (cut,)).rowcount
                self.conn.execute(
                    "UPDATE meta SET value=? WHERE key='dropped'", (str(self.dropped + dropped),)
                )
            self.conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(seq),))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.next_seq = seq
        self.depth += len(rows) - dropped
        if dropped:
            self.dropped += dropped
            log.warning(
                "outbox full (%d events): dropped the %d oldest undelivered events (%d in all)",
                self.max_events,
                dropped,
                self.dropped,
            )
        return [r[0] for r in rows]

    def base(self) -> int:
        """The lowest seq still held (the next seq when empty)."""
        row = self.conn.execute("SELECT MIN(seq) FROM outbox").fetchone()
        return int(row[0]) if row[0] is not None else self.next_seq

    def read(self, after: int, limit: int) -> list[Pending]:
        rows = self.conn.execute(
            "SELECT seq, tag, time, data, causation FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def ack(self, seq: int) -> int:
        """Forget every event up to ``seq``; return how many were removed."""
        removed = self.conn.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount
        self.depth -= removed
        return int(removed)

    def close(self) -> None:
        self.conn.close()
