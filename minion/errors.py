"""Errors of the minion package, under the shared root ``ReactordError``.

ReactordError (reactord.protocol.errors)
 +-- MinionError
      +-- FunctionError       a function that cannot be run (unknown, not allowed, bad arguments)
      +-- MasterKeyError      the master's key cannot be fetched or does not match what is pinned
"""

from __future__ import annotations

from reactord.protocol.errors import ReactordError


class MinionError(ReactordError):
    """Root of the minion's own errors."""


class FunctionError(MinionError):
    pass


class MasterKeyError(MinionError):
    pass
