"""Errors of the master package, under the shared root ``ReactordError``.

ReactordError (reactord.protocol.errors)
 +-- MasterError
      +-- KeyStoreError        a key operation that cannot be done (unknown id, wrong state)
      +-- TargetError          a target expression that is not valid
      +-- ControlError         a control-socket request the master refused (also a RequestError)
      +-- StoreError           the state database cannot be opened or migrated
      +-- ClusterError         the cluster's engine is unreachable, too old, or set up otherwise
      +-- TemplateError        a rule's template names a value the event lacks (reactor.templates)
      +-- Refused              a webhook request answered with its status code (webhook_kinds)
      +-- Busy                 the master cannot take a webhook's events now: 503 (webhooks)

The last three live beside the code that raises them; each is caught by name.
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


class ClusterError(MasterError):
    """The cluster engine cannot be used as it is; the message is one line saying why."""
