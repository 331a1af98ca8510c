"""Control operations of the fleet: ``minions`` (the registry), ``state.list`` (the state
table, now or at a past moment) and ``gate.check`` (whether targeted minions are fit to act on)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError, TargetError
from reactord.control.args import Args, arg, tag_glob
from reactord.control.interfaces import Clock, EventHistory, ResolveTarget
from reactord.protocol.events import MAX_TIME
from reactord.reactor.gatechecks import GateError, compile_checks

if TYPE_CHECKING:
    from reactord.fleet import Row
    from reactord.reactor.gatechecks import Check
    from reactord.store.minions import MinionRecord


class FleetView(Protocol):
    """The state table as rows with their presence and staleness, and the gate over them."""

    @property
    def ttl(self) -> float: ...

    def rows(
        self,
        tag: str | None = ...,
        source: str | None = ...,
        sources: list[str] | None = ...,
        at: float | None = ...,
    ) -> list[Row]: ...

    def gate(self, checks: list[Check], minions: list[str], *, allow_stale: bool = ...) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class FleetParts:
    """What the fleet operations reach; ``clock`` ages the state rows of now."""

    fleet: FleetView
    minions: Callable[[], Iterable[MinionRecord]]
    events: EventHistory
    resolve_target: ResolveTarget
    clock: Clock


async def minions(parts: FleetParts, args: Args) -> Any:
    return [r.public() for r in parts.minions()]


async def state_list(parts: FleetParts, args: Args) -> Any:
    """The state rows (``at``: as they were then; ``complete`` says whether the log still
    reaches back that far), filtered by tag glob, source glob and target."""
    tag = tag_glob(args)
    at = arg(args, "at", (int, float), None)
    if at is not None and not 0 <= at <= MAX_TIME:
        raise ControlError("argument 'at' is a time between 1970 and 3000 (epoch seconds)", "bad_request")
    rows = parts.fleet.rows(
        tag=tag, source=arg(args, "source", str, None), sources=_targeted(parts, args), at=at
    )
    oldest = parts.events.oldest_received()
    now = parts.clock() if at is None else at
    return {
        "at": at,
        "ttl": parts.fleet.ttl,
        "complete": at is None or (oldest is not None and oldest <= at),
        "rows": [row.public(now) for row in rows],
    }


async def gate_check(parts: FleetParts, args: Args) -> Any:
    """Whether every targeted minion (all by default) passes every check; ``no_match`` when
    the target names none."""
    try:
        checks = compile_checks(arg(args, "checks", list))
    except GateError as exc:
        raise ControlError(str(exc), "bad_request") from exc
    targeted = _targeted(parts, args)
    if targeted is None:
        targeted = parts.resolve_target("*", "glob")
    if not targeted:
        raise ControlError("no accepted minion matches the target", "no_match")
    return parts.fleet.gate(checks, targeted, allow_stale=arg(args, "allow_stale", bool, False))


def _targeted(parts: FleetParts, args: Args) -> list[str] | None:
    """The minions the optional ``target`` (with ``target_type``) names; None without one."""
    target = arg(args, "target", str, None)
    if target is None:
        return None
    try:
        return parts.resolve_target(target, arg(args, "target_type", str, "glob"))
    except TargetError as exc:
        raise ControlError(str(exc), "bad_request") from exc
