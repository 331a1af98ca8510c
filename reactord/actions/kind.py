"""What an action kind is: one module that parses its parameters and runs them.

A kind subclasses ``ActionKind`` with its frozen parameters (an ``ActionParams``), and is
registered by one line in ``reactord.actions.kinds``. The rule loader uses its ``name``,
``keys``, ``default_timeout`` and ``parse`` (the reactor's ``KindParser``); the dispatcher
its ``load``, ``time_limit`` and ``execute``. Adding a kind is one module and one line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from reactord.actions.context import ActionContext
from reactord.reactor.actionspec import COMMON, ActionParams

P = TypeVar("P", bound=ActionParams)


class ActionKind(ABC, Generic[P]):
    """One kind of action. ``execute`` returns a small result map, or raises ``ActionFailed``
    with a reason; the dispatcher adds timeouts, retries, locks and dead letters around it."""

    #: The key that names the kind in a rule (``run: test.ping``), and the kind's name.
    name: str
    #: The kind's own keys, ``name`` included (the common ones are ``actionspec.COMMON``).
    keys: tuple[str, ...]
    default_timeout: float
    params_type: type[P]

    @abstractmethod
    def parse(self, spec: Mapping[str, Any]) -> P:
        """A rule's action mapping -> the parameters, templates compiled; ``ValueError``
        starting with the key that is wrong."""

    def load(self, record: Mapping[str, Any]) -> P:
        """Rendered parameters from their record (the audit's, a dead letter's)."""
        return self.params_type.from_record(record)

    def time_limit(self, params: P, timeout: float) -> float | None:
        """How long one try may take before the dispatcher stops it (``timeout``: the action's);
        None when the kind bounds its tries by a clock of its own."""
        return timeout

    @abstractmethod
    async def execute(self, params: P, ctx: ActionContext) -> dict[str, Any]:
        """Run one try with rendered parameters."""


Registry = Mapping[str, ActionKind[Any]]


def registry(*kinds: ActionKind[Any]) -> Registry:
    """The kinds by name, read-only, in the order given (the order a rule error lists them in).

    Two kinds with one name are an error naming both modules, and so is a name that is one
    of the common keys or missing from the kind's own keys.
    """
    named: dict[str, ActionKind[Any]] = {}
    for kind in kinds:
        where = type(kind).__module__
        if kind.name in named:
            raise ValueError(
                f"two action kinds are named {kind.name!r}: {type(named[kind.name]).__module__} and {where}"
            )
        if kind.name in COMMON or kind.name not in kind.keys:
            raise ValueError(f"{where}: an action kind's name is one of its own keys, not one of {COMMON}")
        named[kind.name] = kind
    return MappingProxyType(named)
