"""Cluster mode's local bookkeeping: how far this master has applied the engine's streams.

Every master of a cluster applies the whole event stream, in order, to its own database
(docs/cluster.md); the sequence it reached is written in the same transaction as what it
applied, so after a crash it follows on from exactly the next record, never twice, never
skipping one.
"""

from __future__ import annotations

from reactord.store.database import Database, Writes

_SET = "INSERT OR REPLACE INTO cluster_applied (stream, seq) VALUES (?, ?)"


class AppliedSequence:
    def __init__(self, db: Database, stream: str) -> None:
        self.db = db
        self.stream = stream

    def read(self) -> int:
        """The last sequence applied (0: none yet)."""
        row = self.db.conn.execute(
            "SELECT seq FROM cluster_applied WHERE stream=?", (self.stream,)
        ).fetchone()
        return int(row[0]) if row else 0

    def writes(self, seq: int) -> Writes:
        """The write recording ``seq`` as applied, for the transaction that applied it."""
        return [(_SET, [(self.stream, seq)])]
