"""Control operations of the fleet state: ``state.list`` and ``gate.check``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from reactord.base.errors import ControlError, TargetError
from reactord.fleet import GateError, compile_checks
from reactord.protocol.errors import TagError
from reactord.protocol.localsock import Handler
from reactord.protocol.tags import validate_pattern

if TYPE_CHECKING:
    from reactord.master import Master


def handlers(master: Master, arg: Any) -> dict[str, Handler]:
    """``arg`` is the typed argument reader of reactord.control.ops."""

    def minions(args: dict[str, Any]) -> list[str] | None:
        target = arg(args, "target", str, None)
        if target is None:
            return None
        try:
            return master.resolve_target(target, arg(args, "target_type", str, "glob"))
        except TargetError as exc:
            raise ControlError(str(exc), "bad_request") from exc

    async def state_list(args: dict[str, Any]) -> Any:
        tag = arg(args, "tag", str, None)
        if tag is not None:
            try:
                validate_pattern(tag)
            except TagError as exc:
                raise ControlError(str(exc), "bad_request") from exc
        at = arg(args, "at", (int, float), None)
        rows = master.fleet.rows(tag=tag, source=arg(args, "source", str, None), sources=minions(args), at=at)
        oldest = master.event_log.oldest_received()
        now = time.time() if at is None else at
        return {
            "at": at,
            "ttl": master.fleet.ttl,
            "complete": at is None or (oldest is not None and oldest <= at),
            "rows": [row.public(now) for row in rows],
        }

    async def gate_check(args: dict[str, Any]) -> Any:
        try:
            checks = compile_checks(arg(args, "checks", list))
        except GateError as exc:
            raise ControlError(str(exc), "bad_request") from exc
        targeted = minions(args)
        if targeted is None:
            targeted = master.resolve_target("*", "glob")
        if not targeted:
            raise ControlError("no accepted minion matches the target", "no_match")
        return master.fleet.gate(checks, targeted, allow_stale=arg(args, "allow_stale", bool, False))

    return {"state.list": state_list, "gate.check": gate_check}
