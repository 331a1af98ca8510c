"""Errors of the master package, under the shared root ``ReactordError``.

ReactordError (reactord.protocol.errors)
 +-- MasterError
      +-- KeyStoreError        a key operation that cannot be done (unknown id, wrong state)
      +-- TargetError          a target expression that is not valid
      +-- ControlError         a control-socket request the master refused (also a RequestError)
      +-- StoreError           the state database cannot be opened or migrated
"""

from __future__ import annotations

from reactord.protocol.errors import ReactordError, RequestError


class MasterError(ReactordError):
    """Root of the master's own errors."""


class KeyStoreError(MasterError):
    pass


class TargetError(MasterError):
    pass


class ControlError(MasterError, RequestError):
    """A request the master refused or could not carry out; ``code`` is a short reason."""


class StoreError(MasterError):
    pass
