"""Rules tested offline: events from a JSON file run through the rules, no master needed.

``reactord rules test`` loads the rules, then takes the events in order with each event's
``time`` as the clock, so ``changed``, ``for``, ``throttle`` and ``threshold`` behave across
the sequence as they would live. A ``for`` hold that comes due between two events fires at
the time it came due (a step of its own, as the master's tick would fire it), not when the
next event is taken. Actions are rendered, never run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactord.protocol.errors import ReactordError, TagError
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.protocol.tags import validate_tag
from reactord.reactor.actionspec import KindParser
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.rules import RuleSet, load_rule_set
from reactord.reactor.templates import TemplateError

EVENT_KEYS = ("id", "tag", "source", "time", "data", "seq", "causation", "depth")


class EventFileError(ReactordError):
    """An event file that cannot be used (names the file and the event)."""


def event_from_json(value: Any, where: str, default_time: float) -> Event:
    if not isinstance(value, dict):
        raise EventFileError(f"{where}: an event is a JSON object with at least a tag")
    unknown = set(value) - set(EVENT_KEYS) - {"received", "epoch", "replayed"}
    if unknown:
        raise EventFileError(f"{where}: unknown fields {sorted(unknown)} (known: {', '.join(EVENT_KEYS)})")
    try:
        tag = validate_tag(value.get("tag"))
    except TagError as exc:
        raise EventFileError(f"{where}: {exc}") from None
    data = value.get("data", {})
    if not isinstance(data, dict):
        raise EventFileError(f"{where}: data must be an object")
    when = value.get("time", default_time)
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise EventFileError(f"{where}: time must be seconds since the epoch")
    return Event(
        id=str(value.get("id") or new_id(when)),
        tag=tag,
        source=str(value.get("source", "test")),
        time=float(when),
        data=data,
        seq=int(value.get("seq", 0)),
        causation=value.get("causation"),
        depth=int(value.get("depth", 0)),
        received=float(when),
    )


def read_events(path: Path) -> list[Event]:
    """One event (an object) or a sequence (a list) from a JSON file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{path}: not JSON: {exc}") from None
    items = raw if isinstance(raw, list) else [raw]
    start = time.time()
    return [event_from_json(item, f"{path}[{i}]", start + i) for i, item in enumerate(items)]


@dataclass(slots=True)
class Step:
    """What the rules decided at ``time``: on ``event`` as it came, or (``held``) when a ``for``
    hold on ``event``, the latest event that kept it holding, came due."""

    event: Event
    decisions: list[Decision]
    time: float
    held: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "trigger": "for" if self.held else "event",
            "event": {
                "id": self.event.id,
                "tag": self.event.tag,
                "source": self.event.source,
                "time": self.event.time,
            },
            "decisions": [d.public() for d in self.decisions],
            "actions": self.actions,
        }


def rule_paths(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def run_offline(rules: RuleSet, events: list[Event]) -> list[Step]:
    """Each event with what every candidate rule decided and the actions fired rules would take."""
    engine = Engine(rules)
    previous: dict[tuple[str, str], Event] = {}
    steps: list[Step] = []
    for event in events:
        # `for` holds that came due before this event, each fired at the time it came due
        while (due := engine.next_due()) is not None and due <= event.time:
            # (one step past ``due`` if the sum since + hold rounded down)
            fired = engine.due_holds(due) or engine.due_holds(math.nextafter(due, math.inf))
            if not fired:
                break
            steps += [_step(d.event, [d], due, held=True) for d in fired]
        steps += [_step(d.event, [d], event.time, held=True) for d in engine.due_holds(event.time)]
        key = (event.source, event.tag)
        decisions = engine.evaluate(event, previous.get(key), event.time)
        previous[key] = event
        steps.append(_step(event, decisions, event.time))
    return steps


def _step(event: Event, decisions: list[Decision], at: float, *, held: bool = False) -> Step:
    step = Step(event, decisions, at, held)
    for decision in decisions:
        if not decision.fired:
            continue
        for spec in decision.rule.do:
            entry: dict[str, Any] = {
                "rule": decision.rule.name,
                "kind": spec.kind,
                "label": spec.label_for(event),
            }
            try:
                entry["params"] = spec.render(event)
            except TemplateError as exc:
                entry["error"] = str(exc)
            step.actions.append(entry)
    return step


def load_offline(path: Path, kinds: Mapping[str, KindParser]) -> RuleSet:
    return load_rule_set(rule_paths(path), kinds=kinds)
