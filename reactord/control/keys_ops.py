"""Control operations of minion keys: ``key.list``, ``key.accept``, ``key.reject``, ``key.delete``
and ``key.finger``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError, KeyStoreError
from reactord.control.args import Args, arg
from reactord.keystore import ACCEPTED, PENDING, REJECTED, STATES

if TYPE_CHECKING:
    from reactord.keystore import KeyEntry


class KeyListing(Protocol):
    """The key store, read only."""

    def listing(self) -> dict[str, list[str]]: ...

    def entries(self, minion_id: str | None = ...) -> list[KeyEntry]: ...


class KeyDecisions(Protocol):
    """What moves a key between states; ``KeyStoreError`` when it cannot (the master's nodes:
    they also cut off a minion whose key is no longer accepted)."""

    def accept(self, minion_id: str) -> object: ...

    def reject(self, minion_id: str) -> object: ...

    def delete(self, minion_id: str) -> object: ...


@dataclass(frozen=True, slots=True)
class KeyParts:
    """What the key operations reach: the key store (read), what moves keys, the master's own fingerprint."""

    keys: KeyListing
    decisions: KeyDecisions
    master_finger: str


async def key_list(parts: KeyParts, args: Args) -> Any:
    return parts.keys.listing()


async def key_accept(parts: KeyParts, args: Args) -> Any:
    """``include_rejected``: a glob also matches rejected keys (an exact id always may)."""
    states = (PENDING, REJECTED) if arg(args, "include_rejected", bool, False) else (PENDING,)
    return _change(parts, args, states, parts.decisions.accept, "accepted")


async def key_reject(parts: KeyParts, args: Args) -> Any:
    """``include_accepted``: a glob also matches accepted keys (an exact id always may)."""
    states = (PENDING, ACCEPTED) if arg(args, "include_accepted", bool, False) else (PENDING,)
    return _change(parts, args, states, parts.decisions.reject, "rejected")


async def key_delete(parts: KeyParts, args: Args) -> Any:
    return _change(parts, args, STATES, parts.decisions.delete, "deleted")


async def key_finger(parts: KeyParts, args: Args) -> Any:
    minion_id = arg(args, "id", str, None)
    entries = parts.keys.entries(minion_id)
    if minion_id is not None and not entries:
        raise ControlError(f"no key for {minion_id!r}")
    return {
        "master": parts.master_finger,
        "minions": [{"id": e.id, "state": e.state, "finger": e.finger} for e in entries],
    }


def _change(
    parts: KeyParts, args: Args, states: tuple[str, ...], change: Callable[[str], object], done_key: str
) -> dict[str, list[str]]:
    """Apply ``change`` to every key named (``all``: every pending key); ``dry_run`` only names
    them. A lone key that cannot change is an error; among several, one that changed meanwhile
    (accepted elsewhere, deleted) is left out and the others go on."""
    ids = parts.keys.listing()[PENDING] if arg(args, "all", bool, False) else _named(parts, args, states)
    if arg(args, "dry_run", bool, False):
        return {"matched": ids}
    done = []
    for minion_id in ids:
        try:
            change(minion_id)
        except KeyStoreError as exc:
            if len(ids) == 1:
                raise ControlError(str(exc)) from exc
            continue
        done.append(minion_id)
    return {done_key: done}


def _named(parts: KeyParts, args: Args, states: tuple[str, ...]) -> list[str]:
    """The ids a key operation names: ``ids`` (a list), or ``match`` (an id or a glob) among
    the keys in ``states``; an exact id is taken whatever its state (the store checks it)."""
    if "ids" in args:
        ids = arg(args, "ids", list)
        if not all(isinstance(i, str) for i in ids):
            raise ControlError("argument 'ids' must be a list of ids", "bad_request")
        return list(dict.fromkeys(ids))
    pattern = arg(args, "match", str, None) or arg(args, "id", str)
    if not any(c in pattern for c in "*?["):
        return [pattern]
    listing = parts.keys.listing()
    return sorted({m for state in states for m in listing.get(state, []) if fnmatch.fnmatchcase(m, pattern)})
