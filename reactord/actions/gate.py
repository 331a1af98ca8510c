"""A ``run`` action's ``gate:``, checked against the fleet view before its job starts.

A closed gate fails the try, which is tried again with backoff: the action waits for a
healthy fleet. The fleet view is reached through ``FleetView`` (``reactord.fleet.Fleet``).
"""

from __future__ import annotations

from typing import Any, Protocol

from reactord.actions.context import ResolveTarget
from reactord.reactor.gatechecks import Check, compile_checks


class FleetView(Protocol):
    def gate(self, checks: list[Check], minions: list[str], *, allow_stale: bool = ...) -> dict[str, Any]:
        """``{"open": bool, "minions": {id: {"ok": bool, "reasons": [...]}}}``."""
        ...


class FleetGate:
    """``(gate, the action's minions) -> None`` when open, else why it is closed; a gate with
    a ``target`` of its own checks the minions that target names instead."""

    def __init__(self, fleet: FleetView, resolve_target: ResolveTarget) -> None:
        self.fleet = fleet
        self.resolve_target = resolve_target

    def __call__(self, spec: dict[str, Any], minions: list[str]) -> str | None:
        if spec.get("target"):
            minions = self.resolve_target(spec["target"], spec["target_type"])
        result = self.fleet.gate(compile_checks(spec["checks"]), minions, allow_stale=spec["allow_stale"])
        if result["open"]:
            return None
        closed = [f"{m}: {r['reasons'][0]}" for m, r in result["minions"].items() if not r["ok"]]
        return "; ".join(closed) or "no minion to check"
