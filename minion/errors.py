"""Errors of the minion package, under the shared root ``ReactordError``.

ReactordError (reactord.protocol.errors)
 +-- MinionError
 |    +-- FunctionError       a function that cannot be run (unknown, not allowed, bad arguments)
 |    +-- MasterKeyError      the master's key cannot be fetched or does not match what is pinned
 |    +-- OutboxUnavailable   events that could not be queued: the outbox cannot be written now
 |         (disk full); nothing of them was queued, and the minion goes on
 +-- StorageError (reactord.protocol.errors)
      +-- StorageFull         a state file that cannot be written now; the minion retries
      +-- StorageDamaged      outbox.db or minion.db is not intact: the minion stops (exit 2)
"""

from __future__ import annotations

from reactord.protocol.errors import ReactordError


class MinionError(ReactordError):
    """Root of the minion's own errors."""


class FunctionError(MinionError):
    pass


class MasterKeyError(MinionError):
    pass


class OutboxUnavailable(MinionError):
    """Events refused because the outbox cannot be written now; none of them was queued."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"cannot write {path}: disk full; nothing was queued")
