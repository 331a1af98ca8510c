"""``event.fire`` and ``beacons.*``: the minion's own events and beacons, from a job."""

from __future__ import annotations

from typing import Any

from minion.errors import FunctionError
from minion.functions.context import JobContext
from reactord.protocol.errors import TagError
from reactord.protocol.tags import localize, validate_tag


def fire(tag: str, data: dict[str, Any] | None = None, *, ctx: JobContext) -> dict[str, Any]:
    """Emit an event from this minion (under minion/<id>/), caused by this job."""
    try:
        validate_tag(tag)
    except TagError as exc:
        raise FunctionError(str(exc.args[0])) from None
    if data is not None and not isinstance(data, dict):
        raise FunctionError("data must be a mapping")
    if ctx.emit is None:
        raise FunctionError("this minion cannot emit events here")
    seqs = ctx.emit([(tag, data or {})], ctx.jid)
    return {"tag": localize(ctx.minion_id, tag), "seq": seqs[0]}


def _beacons(ctx: JobContext) -> Any:
    if ctx.beacons is None:
        raise FunctionError("no beacons on this minion")
    return ctx.beacons


def beacons_list(*, ctx: JobContext) -> list[dict[str, Any]]:
    """Configured beacons: type, interval, enabled, polls, errors, last error."""
    return _beacons(ctx).listing()  # type: ignore[no-any-return]


def beacons_enable(name: str, *, ctx: JobContext) -> dict[str, Any]:
    """Enable a beacon (until the minion restarts)."""
    try:
        return _beacons(ctx).set_enabled(name, True)  # type: ignore[no-any-return]
    except KeyError as exc:
        raise FunctionError(str(exc.args[0])) from None


def beacons_disable(name: str, *, ctx: JobContext) -> dict[str, Any]:
    """Disable a beacon (until the minion restarts)."""
    try:
        return _beacons(ctx).set_enabled(name, False)  # type: ignore[no-any-return]
    except KeyError as exc:
        raise FunctionError(str(exc.args[0])) from None


def beacons_fire_now(name: str, *, ctx: JobContext) -> list[dict[str, Any]]:
    """Poll a beacon now and emit everything it reports; return the reports."""
    manager = _beacons(ctx)
    try:
        manager._slot(name)
    except KeyError as exc:
        raise FunctionError(str(exc.args[0])) from None
    return ctx.on_loop(manager.fire_now(name))  # type: ignore[no-any-return]


def beacons_test(name: str, *, ctx: JobContext) -> list[dict[str, Any]]:
    """Poll a beacon once and return the events it would send, sending nothing."""
    manager = _beacons(ctx)
    try:
        manager._slot(name)
    except KeyError as exc:
        raise FunctionError(str(exc.args[0])) from None
    try:
        reports = ctx.on_loop(manager.test(name))
    except RuntimeError as exc:
        raise FunctionError(str(exc)) from None
    return [{"tag": localize(ctx.minion_id, tag), "data": data} for tag, data in reports]
