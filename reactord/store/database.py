"""Opening the master database: owner-only file, checked whole, WAL, and migrations in order.

Storage faults of the machine surface here as ``StorageFull`` (no space: nothing was written,
try again later) and ``StorageDamaged`` (the file is not an intact database: the master stops
with one line naming the file); see reactord.protocol.sqlitefile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reactord.base.errors import StoreError
from reactord.protocol.sqlitefile import connect, storage_faults

#: Writes for a transaction another part owns (an event's, a tick's): (SQL, rows for
#: executemany). Opaque above the store: made by one store, applied by the event log.
Writes = list[tuple[str, list[tuple[Any, ...]]]]

log = logging.getLogger("reactord.store")

#: With the checkpointer running, a writer checkpoints by itself only past this many WAL pages.
FALLBACK_CHECKPOINT_PAGES = 16_000


class Database:
    """One SQLite connection, used from the master's event loop thread only."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        self.conn = connect(path, synchronous="NORMAL")
        try:
            with storage_faults(path):
                self.conn.execute("PRAGMA busy_timeout=5000")
                self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: hot indexes in memory
                self.conn.execute("PRAGMA temp_store=MEMORY")
                self._migrate(migrations)
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"{path}: {exc}") from exc
        except BaseException:
            self.conn.close()
            raise

    def _migrate(self, migrations: Sequence[str]) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        version = int(row[0]) if row else 0
        if version > len(migrations):
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this reactord "
                f"({len(migrations)}); upgrade reactord"
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(number),)
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; storage faults leave it as ``StorageFull`` / ``StorageDamaged``."""
        with storage_faults(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One statement (or several) outside a transaction, with storage faults named."""
        with storage_faults(self.path):
            yield self.conn

    def used_bytes(self) -> int:
        """Bytes of the database's pages in use (free pages excluded): what retention bounds."""
        size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * size)

    def size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += (self.path.parent / f"{self.path.name}{suffix}").stat().st_size
            except FileNotFoundError:
                pass
        return total

    def checkpoint_in_background(self, interval: float = 0.5) -> Checkpointer:
        """Move WAL checkpoints off the event loop: a thread with its own connection copies the
        WAL into the database (SQLite's C code runs without the GIL), so no commit on the loop
        pays for one; a writer still does it itself past ``FALLBACK_CHECKPOINT_PAGES``."""
        self.conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_CHECKPOINT_PAGES}")
        checkpointer = Checkpointer(self.path, interval)
        checkpointer.start()
        return checkpointer

    def close(self) -> None:
        self.conn.close()


class Checkpointer(threading.Thread):
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds on its own connection.

    PASSIVE never waits for readers or writers; what it cannot copy now it copies next time.
    A failure (a full disk) is logged and tried again at the next turn.
    """

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(name="checkpointer", daemon=True)
        self.path = path
        self.interval = interval
        self._halt = threading.Event()
        self.failures = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._halt.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    self.failures += 1
                    log.warning("checkpoint of %s failed (tried again): %s", self.path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
