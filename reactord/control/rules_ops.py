"""Control operations of the rules: ``rules.list``, ``rules.reload`` and ``rules.explain``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError
from reactord.control.args import Args, arg
from reactord.control.events_ops import stored_event
from reactord.control.interfaces import Clock, EventHistory
from reactord.reactor.multievent import Correlation
from reactord.reactor.offline import EventFileError, event_from_json

if TYPE_CHECKING:
    from reactord.protocol.events import Event
    from reactord.reactor.rules import RuleSet
    from reactord.reactor.rulestate import RuleState


class RuleCatalog(Protocol):
    """The rules in use and how often each fired since the master started (the engine)."""

    @property
    def rules(self) -> RuleSet: ...

    @property
    def fire_counts(self) -> Mapping[str, int]: ...

    @property
    def state(self) -> RuleState: ...


class RuleService(Protocol):
    """What reloads the rules and tells what they decide (the reactor)."""

    def reload(self) -> tuple[bool, str]: ...

    def recorded(self, event: Event) -> list[dict[str, Any]]: ...

    def explain(self, event: Event, *, stored: bool) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class RuleParts:
    """What the rule operations reach; ``clock`` times an explained event given without a time."""

    catalog: RuleCatalog
    service: RuleService
    events: EventHistory
    clock: Clock


async def rules_list(parts: RuleParts, args: Args) -> Any:
    fired = parts.catalog.fire_counts
    return [
        {
            "name": r.name,
            "file": r.file,
            "line": r.line,
            "on": list(r.on),
            "enabled": r.enabled,
            "description": r.description,
            "actions": [a.label for a in r.do],
            "fired": fired.get(r.name, 0),
            **_multi(parts, r),
        }
        for r in parts.catalog.rules.rules
    ]


def _multi(parts: RuleParts, rule: Any) -> dict[str, Any]:
    """A rule over several events: its kind, and the keys it holds against its limit."""
    spec = rule.multi
    if spec is None:
        return {}
    if isinstance(spec, Correlation):
        state = {**parts.catalog.state.keys_of(rule.name), "max_keys": spec.max_keys}
        return {"kind": spec.kind, "describe": spec.describe(), "state": state}
    return {"kind": "fleet", "describe": spec.describe()}


async def rules_reload(parts: RuleParts, args: Args) -> Any:
    """All or nothing: rules that do not load leave the running set in place."""
    ok, message = parts.service.reload()
    if not ok:
        raise ControlError(f"rules not reloaded (the running set stays): {message}", "invalid_rules")
    return {"reloaded": message}


async def rules_explain(parts: RuleParts, args: Args) -> Any:
    """What the rules decide for an event: a logged one (``id``), with what was decided when it
    arrived, or one given whole (``event``, timed now when it has no time)."""
    if "event" in args:
        try:
            event = event_from_json(arg(args, "event", dict), "event", parts.clock())
        except EventFileError as exc:
            raise ControlError(str(exc), "bad_request") from exc
        recorded: list[dict[str, Any]] | None = None
    else:
        event = stored_event(parts.events, arg(args, "id", str))
        recorded = parts.service.recorded(event)
    now = parts.service.explain(event, stored=recorded is not None)
    return {"event": event.public(), "recorded": recorded, "now": now}
