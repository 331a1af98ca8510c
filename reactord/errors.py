"""Errors of the master package, under the shared root ``ReactordError``.

ReactordError (reactord.protocol.errors)
 +-- MasterError
      +-- KeyStoreError        a key operation that cannot be done (unknown id, wrong state)
      +-- TargetError          a target expression that is not valid
      +-- ControlError         a control-socket request that failed on the master
      |    +-- MasterUnreachable   no master answers on the control socket (CLI exit 3)
      +-- StoreError           the state database cannot be opened or migrated
"""

from __future__ import annotations

from reactord.protocol.errors import ReactordError


class MasterError(ReactordError):
    """Root of the master's own errors."""


class KeyStoreError(MasterError):
    pass


class TargetError(MasterError):
    pass


class ControlError(MasterError):
    """A request the master refused or could not carry out; ``code`` is a short reason."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


class MasterUnreachable(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "unreachable")


class StoreError(MasterError):
    pass
