"""The minion's own database: which jids it ran (replay defence) and returns not yet acknowledged.

A jid is claimed before it runs and the claim is kept until the command's expiry, so the
same signed command arriving again (a replay, or a re-send after a restart) never runs
twice. A return is written here before it is sent and re-sent until the master acknowledges it.

On a full disk: a claim that cannot be written raises ``StorageFull`` and the command must
not run (without a durable claim it could run twice); a return that cannot be stored is
kept in memory, sent anyway and re-sent until acknowledged; an acknowledgement that cannot
be recorded is kept in memory. ``flush`` writes what was kept once space returns. A damaged
file raises ``StorageDamaged`` (at open, checked whole, or later).
"""

from __future__ import annotations

from pathlib import Path

from reactord.protocol.errors import StorageFull
from reactord.protocol.sqlitefile import connect, storage_faults

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
        self.path = path
        self.conn = connect(path, synchronous="FULL")  # a claimed jid must survive a power loss
        try:
            with storage_faults(path):
                self.conn.executescript(_SCHEMA)
        except BaseException:
            self.conn.close()
            raise
        self._returns: dict[str, bytes] = {}  # returns a full disk kept from being stored
        self._acked: set[str] = set()  # acknowledgements a full disk kept from being recorded

    def claim(self, jid: str, fun: str, expires: float, now: float) -> bool:
        """Record that ``jid`` runs now; False if it was already claimed (never run it twice).

        Raises ``StorageFull`` when the claim cannot be written: the job must not run.
        """
        with storage_faults(self.path):
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO jobs (jid, fun, expires, received) VALUES (?, ?, ?, ?)",
                (jid, fun, expires, now),
            )
        if cur.rowcount != 1:
            return False
        self._returns.pop(jid, None)  # a refusal kept from an earlier try that could not claim it
        return True

    def store_return(self, jid: str, wire: bytes) -> bool:
        """Keep a return until it is acknowledged; False when only in memory (disk full)."""
        try:
            with storage_faults(self.path):
                stored = self.conn.execute("UPDATE jobs SET ret=? WHERE jid=?", (wire, jid)).rowcount == 1
        except StorageFull:
            stored = False
        if not stored:
            self._returns[jid] = wire
        return stored

    def ack(self, jid: str) -> None:
        self._returns.pop(jid, None)
        try:
            with storage_faults(self.path):
                self.conn.execute("UPDATE jobs SET acked=1, ret=NULL WHERE jid=?", (jid,))
        except StorageFull:
            self._acked.add(jid)

    def flush(self) -> None:
        """Store the returns and acknowledgements kept in memory, as far as the disk allows."""
        try:
            for jid, wire in list(self._returns.items()):
                with storage_faults(self.path):
                    stored = self.conn.execute("UPDATE jobs SET ret=? WHERE jid=?", (wire, jid)).rowcount
                if stored:  # a return without a claim (a refused command) stays in memory
                    del self._returns[jid]
            for jid in list(self._acked):
                with storage_faults(self.path):
                    self.conn.execute("UPDATE jobs SET acked=1, ret=NULL WHERE jid=?", (jid,))
                self._acked.discard(jid)
        except StorageFull:
            return

    def unacked(self, limit: int = 100) -> list[bytes]:
        """Returns to send again: those stored and not acknowledged, then those in memory."""
        with storage_faults(self.path):
            rows = self.conn.execute(
                "SELECT jid, ret FROM jobs WHERE acked=0 AND ret IS NOT NULL ORDER BY jid LIMIT ?", (limit,)
            ).fetchall()
        stored = [ret for jid, ret in rows if jid not in self._acked and jid not in self._returns]
        return stored + list(self._returns.values())[: max(0, limit - len(stored))]

    def ran(self, jid: str) -> bool:
        with storage_faults(self.path):
            return self.conn.execute("SELECT 1 FROM jobs WHERE jid=?", (jid,)).fetchone() is not None

    def prune(self, now: float) -> int:
        """Forget claims whose command expired (it can no longer be accepted anyway); 0 on a full disk."""
        try:
            with storage_faults(self.path):
                cur = self.conn.execute("DELETE FROM jobs WHERE expires < ? AND acked=1", (now,))
        except StorageFull:
            return 0
        return cur.rowcount

    def close(self) -> None:
        self.conn.close()
