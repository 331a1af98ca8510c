"""A gate's checks: ``[{on: TAG_GLOB, when: {...}}, ...]`` compiled with the rules' conditions.

A rule's ``gate:`` (checked at load), ``reactord gate`` and the fleet view all compile gate
checks here; the fleet view applies them to its rows (``Fleet.gate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reactord.base.errors import MasterError
from reactord.protocol.errors import ReactordError
from reactord.protocol.tags import validate_pattern
from reactord.reactor.conditions import Condition, Counter, compile_condition


class GateError(MasterError):
    """A gate whose conditions are not valid."""


@dataclass(frozen=True, slots=True)
class Check:
    """One group of a gate: rows whose tag matches ``on`` must satisfy ``when``."""

    on: str
    when: Condition | None
    written: dict[str, Any]


def compile_checks(groups: list[dict[str, Any]]) -> list[Check]:
    """``[{on: TAG_GLOB, when: {...}}, ...]`` into checks; ``GateError`` names what is wrong."""
    if not isinstance(groups, list) or not groups:
        raise GateError("a gate needs at least one {on: TAG_GLOB, when: {...}}")
    checks = []
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or "on" not in group or set(group) - {"on", "when"}:
            raise GateError(f"gate[{index}]: expected {{on: TAG_GLOB, when: {{...}}}}")
        try:
            validate_pattern(group["on"])
            when = (
                compile_condition(group["when"], f"gate[{index}].when", Counter())
                if group.get("when")
                else None
            )
        except (ValueError, ReactordError) as exc:
            raise GateError(str(exc)) from None
        checks.append(Check(group["on"], when, group))
    return checks
