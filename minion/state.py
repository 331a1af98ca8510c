"""The minion's own database: which jids it ran (replay defence) and returns not yet acknowledged.

A jid is claimed before it runs and the claim is kept until the command's expiry, so the
same signed command arriving again (a replay, or a re-send after a restart) never runs
twice. A return is written here before it is sent and re-sent until the master acknowledges it.

Claims and returns that come together (a burst of commands, jobs ending in the same turn
of the loop) are written in one transaction each (``claim_many``, ``store_returns``): one
sync to disk for the lot. Acknowledgements are kept in memory and written together by
``flush`` (every heartbeat, or once ``ACKS_KEPT`` wait): one lost in a crash only means the
return is sent once more, and the master, which has it, acknowledges it again.

On a full disk: a claim that cannot be written raises ``StorageFull`` and the command must
not run (without a durable claim it could run twice); a return that cannot be stored is
kept in memory, sent anyway and re-sent until acknowledged; an acknowledgement that cannot
be recorded stays in memory. ``flush`` writes what was kept once space returns. A damaged
file raises ``StorageDamaged`` (at open, checked whole, or later).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reactord.protocol.errors import StorageFull
from reactord.protocol.sqlitefile import connect, storage_faults, write_transaction

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


#: Acknowledgements kept in memory before they are written without waiting for a heartbeat.
ACKS_KEPT = 256
_CLAIM = "INSERT OR IGNORE INTO jobs (jid, fun, expires, received) VALUES (?, ?, ?, ?)"
_STORE = "UPDATE jobs SET ret=CASE WHEN acked THEN NULL ELSE ? END WHERE jid=?"  # (acked: sent before stored)
_ACK = "UPDATE jobs SET acked=1, ret=NULL WHERE jid=?"


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
        self._acked: set[str] = set()  # acknowledgements not written yet (``flush`` writes them)

    def claim(self, jid: str, fun: str, expires: float, now: float) -> bool:
        """Record that ``jid`` runs now; False if it was already claimed (never run it twice).

        Raises ``StorageFull`` when the claim cannot be written: the job must not run.
        """
        return self.claim_many([(jid, fun, expires)], now)[0]

    def claim_many(self, jobs: Sequence[tuple[str, str, float]], now: float) -> list[bool]:
        """``claim`` for several (jid, fun, expires) at once, in one transaction: whether each
        was claimed. Raises ``StorageFull`` when they cannot be written: none may run."""
        with write_transaction(self.conn, self.path):
            claimed = [
                self.conn.execute(_CLAIM, (jid, fun, expires, now)).rowcount == 1
                for jid, fun, expires in jobs
            ]
        for (jid, _, _), ok in zip(jobs, claimed, strict=True):
            if ok:
                self._returns.pop(jid, None)  # a refusal kept from an earlier try that could not claim it
        return claimed

    def store_return(self, jid: str, wire: bytes) -> bool:
        """Keep a return until it is acknowledged; False when only in memory (disk full)."""
        return self.store_returns([(jid, wire)])[0]

    def store_returns(self, returns: Sequence[tuple[str, bytes]]) -> list[bool]:
        """``store_return`` for several (jid, wire) at once, in one transaction."""
        try:
            with write_transaction(self.conn, self.path):
                stored = [self.conn.execute(_STORE, (wire, jid)).rowcount == 1 for jid, wire in returns]
        except StorageFull:
            stored = [False] * len(returns)
        for (jid, wire), ok in zip(returns, stored, strict=True):
            if not ok:
                self._returns[jid] = wire
        return stored

    def ack(self, jid: str) -> None:
        """The master has the return: it is not sent again (written with the next ``flush``)."""
        self._returns.pop(jid, None)
        self._acked.add(jid)
        if len(self._acked) >= ACKS_KEPT:
            self.flush()

    def flush(self) -> None:
        """Write the acknowledgements kept in memory, and the returns a full disk kept there,
        as far as the disk allows."""
        try:
            for jid, wire in list(self._returns.items()):
                with storage_faults(self.path):
                    stored = self.conn.execute(_STORE, (wire, jid)).rowcount
                if stored:  # a return without a claim (a refused command) stays in memory
                    del self._returns[jid]
            if self._acked:
                acked = list(self._acked)
                with write_transaction(self.conn, self.path):
                    self.conn.executemany(_ACK, [(jid,) for jid in acked])
                self._acked.difference_update(acked)
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
        self.flush()  # (only acknowledged claims go)
        try:
            with storage_faults(self.path):
                cur = self.conn.execute("DELETE FROM jobs WHERE expires < ? AND acked=1", (now,))
        except StorageFull:
            return 0
        return cur.rowcount

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.conn.close()
