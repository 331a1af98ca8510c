"""The minion's own database: which jids it ran (replay defence) and returns not yet acknowledged.

A jid is claimed before it runs and the claim is kept until the command's expiry, so the
same signed command arriving again (a replay, or a re-send after a restart) never runs
twice. A return is written here before it is sent and re-sent until the master acknowledges it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    jid TEXT PRIMARY KEY,
    fun TEXT NOT NULL,
    expires REAL NOT NULL,
    received REAL NOT NULL,
    ret BLOB,
    acked INTEGER NOT NULL DEFAULT 0
);
"""


class MinionState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # a claimed jid must survive a power loss
        self.conn.executescript(_SCHEMA)

    def claim(self, jid: str, fun: str, expires: float, now: float) -> bool:
        """Record that ``jid`` runs now; False if it was already claimed (never run it twice)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO jobs (jid, fun, expires, received) VALUES (?, ?, ?, ?)",
            (jid, fun, expires, now),
        )
        return cur.rowcount == 1

    def store_return(self, jid: str, wire: bytes) -> None:
        self.conn.execute("UPDATE jobs SET ret=? WHERE jid=?", (wire, jid))

    def ack(self, jid: str) -> None:
        self.conn.execute("UPDATE jobs SET acked=1, ret=NULL WHERE jid=?", (jid,))

    def unacked(self, limit: int = 100) -> list[bytes]:
        rows = self.conn.execute(
            "SELECT ret FROM jobs WHERE acked=0 AND ret IS NOT NULL ORDER BY jid LIMIT ?", (limit,)
        ).fetchall()
        return [r[0] for r in rows]

    def ran(self, jid: str) -> bool:
        return self.conn.execute("SELECT 1 FROM jobs WHERE jid=?", (jid,)).fetchone() is not None

    def prune(self, now: float) -> int:
        """Forget claims whose command expired (it can no longer be accepted anyway)."""
        cur = self.conn.execute("DELETE FROM jobs WHERE expires < ? AND acked=1", (now,))
        return cur.rowcount

    def close(self) -> None:
        self.conn.close()
