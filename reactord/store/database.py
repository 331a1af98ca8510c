"""Opening the master database: owner-only file, WAL, and schema migrations in order."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from reactord.errors import StoreError


class Database:
    """One SQLite connection, used from the master's event loop thread only."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: the hot indexes stay in memory
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self._migrate(migrations)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {exc}") from exc

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
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(f"{self.path}{suffix}").st_size
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        self.conn.close()
