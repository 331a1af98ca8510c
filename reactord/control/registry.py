"""Every control operation by its name on the socket, each bound to the parts of its area.

An operation is ``async def op(parts, args)`` in the module of its area; ``handlers`` lists
them all in one literal dict (a name given twice is a lint error), binding each to its area's
parts, which the master builds once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from reactord.control import (
    deadletters_ops,
    events_ops,
    fleet_ops,
    jobs_ops,
    keys_ops,
    rules_ops,
    status_ops,
    tokens_ops,
)
from reactord.control.args import Args
from reactord.control.deadletters_ops import DeadLetterParts
from reactord.control.events_ops import EventParts
from reactord.control.fleet_ops import FleetParts
from reactord.control.jobs_ops import JobParts
from reactord.control.keys_ops import KeyParts
from reactord.control.rules_ops import RuleParts
from reactord.control.status_ops import StatusParts
from reactord.control.tokens_ops import TokenParts
from reactord.protocol.localsock import Handler

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Parts:
    """What every area of operations reaches of the master."""

    status: StatusParts
    keys: KeyParts
    fleet: FleetParts
    jobs: JobParts
    events: EventParts
    rules: RuleParts
    dead_letters: DeadLetterParts
    tokens: TokenParts


def handlers(parts: Parts) -> dict[str, Handler]:
    return {
        "ping": _bind(status_ops.ping, parts.status),
        "status": _bind(status_ops.status, parts.status),
        "cluster.status": _bind(status_ops.cluster_status, parts.status),
        "key.list": _bind(keys_ops.key_list, parts.keys),
        "key.accept": _bind(keys_ops.key_accept, parts.keys),
        "key.reject": _bind(keys_ops.key_reject, parts.keys),
        "key.delete": _bind(keys_ops.key_delete, parts.keys),
        "key.finger": _bind(keys_ops.key_finger, parts.keys),
        "minions": _bind(fleet_ops.minions, parts.fleet),
        "state.list": _bind(fleet_ops.state_list, parts.fleet),
        "gate.check": _bind(fleet_ops.gate_check, parts.fleet),
        "run": _bind(jobs_ops.run, parts.jobs),
        "jobs.list": _bind(jobs_ops.jobs_list, parts.jobs),
        "jobs.show": _bind(jobs_ops.jobs_show, parts.jobs),
        "event.fire": _bind(events_ops.event_fire, parts.events),
        "event.list": _bind(events_ops.event_list, parts.events),
        "event.show": _bind(events_ops.event_show, parts.events),
        "event.replay": _bind(events_ops.event_replay, parts.events),
        "bus.probe": _bind(events_ops.bus_probe, parts.events),
        "rules.list": _bind(rules_ops.rules_list, parts.rules),
        "rules.reload": _bind(rules_ops.rules_reload, parts.rules),
        "rules.explain": _bind(rules_ops.rules_explain, parts.rules),
        "deadletters.list": _bind(deadletters_ops.dead_list, parts.dead_letters),
        "deadletters.retry": _bind(deadletters_ops.dead_retry, parts.dead_letters),
        "token.create": _bind(tokens_ops.token_create, parts.tokens),
        "token.list": _bind(tokens_ops.token_list, parts.tokens),
        "token.revoke": _bind(tokens_ops.token_revoke, parts.tokens),
    }


def _bind(op: Callable[[P, Args], Awaitable[Any]], parts: P) -> Handler:
    """The socket's handler of ``op``: called with a request's arguments only."""
    return partial(op, parts)
