"""The daemons' SQLite files: created owner-only, checked whole at open, and their faults named.

Both daemons keep their durable state in SQLite (the master's database, the minion's outbox
and job record). A fault of the machine reaches them as an ``sqlite3`` error; this module
says which kind it is, so that a daemon can act on it instead of dying with a traceback:

- ``StorageFull``: no space (or quota) left. Nothing was written; the daemon keeps running,
  stops acknowledging what it cannot store, and tries again until space returns.
- ``StorageDamaged``: the file is not an intact database (cut short, overwritten, garbage in
  the middle). Found by ``PRAGMA quick_check`` at open, before the daemon starts anything;
  the message names the file and what to do, and the daemon exits 2.

Any other ``sqlite3`` error is not a fault of the machine (a bug, a value the database
refuses) and is left to the caller.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reactord.protocol.errors import StorageDamaged, StorageError, StorageFull

#: Where operators read what to do with a damaged file.
DAMAGED_HELP = "docs/operations.md, 'Damaged state files'"

_FULL = {"SQLITE_FULL"}
_BUSY = {
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_BUSY_SNAPSHOT",
    "SQLITE_BUSY_RECOVERY",
    "SQLITE_LOCKED_SHAREDCACHE",
}
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_VTAB", "SQLITE_CORRUPT_SEQUENCE"}
_IO = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def damaged(path: Path | str, detail: str) -> StorageDamaged:
    # One line whatever SQLite says: quick_check's report spans lines ("*** in database main ***").
    detail = " ".join(detail.replace("*** in database main ***", "").split())
    return StorageDamaged(
        str(path),
        f"the database is damaged ({detail}): move it aside (e.g. to {path}.damaged) and start "
        f"again, or restore it from a backup; see {DAMAGED_HELP}",
    )


def storage_error(path: Path | str, exc: sqlite3.Error) -> StorageError | None:
    """The ``StorageError`` that ``exc`` means, or None when it is no fault of the machine."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name in _FULL or "database or disk is full" in text:
        return StorageFull(str(path), "disk full (no space left for the database)")
    if name in _BUSY or "database is locked" in text:
        return StorageFull(str(path), "locked by another process for too long; trying again")
    if name in _DAMAGED or "malformed" in text or "not a database" in text:
        return damaged(path, text)
    if name.startswith(_IO) or "disk I/O error" in text:
        # ENOSPC during a write often surfaces as an I/O error of the WAL or journal.
        return StorageFull(str(path), f"cannot write ({text})")
    return None


@contextmanager
def storage_faults(path: Path | str) -> Iterator[None]:
    """Raise the storage faults of the ``sqlite3`` calls inside as ``StorageError``."""
    try:
        yield
    except sqlite3.Error as exc:
        error = storage_error(path, exc)
        if error is None:
            raise
        raise error from exc


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path | str) -> Iterator[None]:
    """One write transaction on an autocommit connection (``connect``'s): committed whole
    (one sync to disk with ``synchronous=FULL``), or rolled back and its fault raised as a
    ``StorageError``."""
    with storage_faults(path):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            # On a full disk SQLite may have rolled the transaction back itself already.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


def connect(path: Path, *, synchronous: str = "NORMAL", check: bool = True) -> sqlite3.Connection:
    """Open ``path`` (made owner-only when new) in WAL mode, checked whole when ``check``.

    Raises ``StorageDamaged`` for a file that is not an intact database and ``StorageFull``
    when it cannot even be opened for lack of space.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        with storage_faults(path):
            if check:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
                if problems != ["ok"]:
                    raise damaged(path, "; ".join(str(p) for p in problems)[:300])
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            # Deleted rows are not overwritten with zeros: with secure_delete on (this build's
            # default) a DELETE needs as much new WAL as the rows it removes, which a full disk
            # does not have, and acknowledged rows could never be removed to make room.
            conn.execute("PRAGMA secure_delete=FAST")
    except BaseException:
        conn.close()
        raise
    return conn
