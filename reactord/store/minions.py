"""The minion registry: what the master knows of each accepted minion, kept in SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from reactord.base import jsonable
from reactord.protocol.errors import StorageFull
from reactord.store.database import Database


@dataclass(frozen=True, slots=True)
class MinionRecord:
    id: str
    grains: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    functions: list[str] = field(default_factory=list)
    presence: str = "down"
    last_seen: float = 0.0
    first_seen: float = 0.0
    #: Cluster mode: the master holding its connection ("" on a single master).
    master: str = ""

    def public(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "presence": self.presence,
            "last_seen": self.last_seen,
            "version": self.version,
            "grains": self.grains,
        }
        if self.master:
            out["master"] = self.master
        return out


class MinionRegistry:
    """In memory for reads on hot paths; written through on changes, ``last_seen`` in batches.

    A change the database cannot take now (a full disk) stays in memory and is written by a
    later ``flush``: presence goes on being judged, and nothing is lost once space returns.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._records: dict[str, MinionRecord] = {}
        self._dirty: set[str] = set()  # last_seen to write
        self._unwritten: set[str] = set()  # whole rows to write (or to delete, when gone)
        for row in db.conn.execute(
            "SELECT id, grains, version, functions, presence, last_seen, first_seen FROM minions"
        ):
            self._records[row[0]] = MinionRecord(
                id=row[0],
                grains=jsonable.loads(row[1]),
                version=row[2],
                functions=jsonable.loads(row[3]),
                presence=row[4],
                last_seen=row[5],
                first_seen=row[6],
            )

    def get(self, minion_id: str) -> MinionRecord | None:
        return self._records.get(minion_id)

    def all(self) -> list[MinionRecord]:
        return [self._records[k] for k in sorted(self._records)]

    def records(self) -> Mapping[str, MinionRecord]:
        """Every record by id, read-only and not a copy (fleet rules read it per event)."""
        return MappingProxyType(self._records)

    def ids(self) -> list[str]:
        return sorted(self._records)

    def upsert_hello(
        self, minion_id: str, grains: dict[str, Any], version: str, functions: list[str], now: float
    ) -> MinionRecord:
        old = self._records.get(minion_id)
        record = MinionRecord(
            id=minion_id,
            grains=grains,
            version=version,
            functions=functions,
            presence=old.presence if old else "down",
            last_seen=old.last_seen if old else 0.0,
            first_seen=old.first_seen if old and old.first_seen else now,
            master=old.master if old else "",
        )
        self._records[minion_id] = record
        self._write_row(minion_id)
        return record

    def mirror(self, record: MinionRecord) -> None:
        """Cluster mode: a minion as the master holding it says it is."""
        old = self._records.get(record.id)
        self._records[record.id] = replace(
            record, first_seen=old.first_seen if old and old.first_seen else record.first_seen
        )
        self._write_row(record.id)

    def set_master(self, minion_id: str, master: str) -> None:
        record = self._records.get(minion_id)
        if record is not None and record.master != master:
            self._records[minion_id] = replace(record, master=master)

    def _write_row(self, minion_id: str) -> None:
        """Write (or delete) one minion's row now; on a full disk, at the next ``flush``."""
        try:
            with self.db.writing() as conn:
                self._row(conn, minion_id)
        except StorageFull:
            self._unwritten.add(minion_id)
        else:
            self._unwritten.discard(minion_id)

    def _row(self, conn: Any, minion_id: str) -> None:
        record = self._records.get(minion_id)
        if record is None:
            conn.execute("DELETE FROM minions WHERE id=?", (minion_id,))
            return
        conn.execute(
            "INSERT OR REPLACE INTO minions (id, grains, version, functions, presence, last_seen,"
            " first_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                minion_id,
                jsonable.dumps(record.grains),
                record.version,
                jsonable.dumps(record.functions),
                record.presence,
                record.last_seen,
                record.first_seen,
            ),
        )

    def touch(self, minion_id: str, now: float) -> None:
        record = self._records.get(minion_id)
        if record is not None:
            self._records[minion_id] = replace(record, last_seen=now)
            self._dirty.add(minion_id)

    def set_presence(self, minion_id: str, presence: str) -> None:
        record = self._records.get(minion_id)
        if record is None:
            return
        self._records[minion_id] = replace(record, presence=presence)
        self._dirty.discard(minion_id)
        self._write_row(minion_id)

    def flush(self) -> None:
        """Write the batched ``last_seen`` updates and the rows a full disk held back."""
        if not self._dirty and not self._unwritten:
            return
        rows = [(self._records[m].last_seen, m) for m in self._dirty if m in self._records]
        try:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE minions SET last_seen=? WHERE id=?", rows)
                for minion_id in self._unwritten:
                    self._row(conn, minion_id)
        except StorageFull:
            return  # kept for the next flush
        self._dirty.clear()
        self._unwritten.clear()

    def remove(self, minion_id: str) -> None:
        self._records.pop(minion_id, None)
        self._dirty.discard(minion_id)
        self._write_row(minion_id)
