"""Rules tested offline: events from a JSON file run through the rules, no master needed.

``reactord rules test`` loads the rules, then takes the events in order with each event's
``time`` as the clock, so ``changed``, ``for``, ``throttle``, ``threshold``, correlations,
sequences and absences behave across the sequence as they would live. A ``for`` hold or an
absence that comes due between two events fires at the time it came due (a step of its own,
as the master's tick would fire it), not when the next event is taken; ``{"clock": T}`` in
the sequence moves the clock to T without an event (what is due by then fires). Fleet rules
count the sources of the events as the fleet, each up from its first event until a
``reactor/presence/<id>/<state>`` event from ``master`` says otherwise (no grains: a grain
target selects nobody offline). Actions are rendered, never run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reactord.protocol.errors import ReactordError, TagError
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.protocol.tags import is_valid_minion_id, validate_tag
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


def read_events(path: Path) -> list[Event | float]:
    """One event (an object) or a sequence (a list) from a JSON file; ``{"clock": T}`` in a
    sequence is T, a time the clock moves to."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{path}: not JSON: {exc}") from None
    items = raw if isinstance(raw, list) else [raw]
    start = time.time()
    return [_item(item, f"{path}[{i}]", start + i) for i, item in enumerate(items)]


def _item(value: Any, where: str, default_time: float) -> Event | float:
    if isinstance(value, dict) and set(value) == {"clock"}:
        clock = value["clock"]
        if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock):
            raise EventFileError(f"{where}: clock must be seconds since the epoch")
        return float(clock)
    return event_from_json(value, where, default_time)


@dataclass(slots=True)
class Step:
    """What the rules decided at ``time``: on ``event`` as it came, or (``held``) when a ``for``
    hold on ``event``, the latest event that kept it holding, came due."""

    event: Event
    decisions: list[Decision]
    time: float
    due: str | None = None  # "for" or "absence": decided when it came due, not on an event
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.due is not None

    def public(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "trigger": self.due or "event",
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


class OfflineFleet:
    """The fleet of an offline run: the sources of its events (those a minion could be), up
    from their first event, with the presence ``reactor/presence/<id>/<state>`` gives them."""

    def __init__(self) -> None:
        self.minions: dict[str, SimpleNamespace] = {}

    def see(self, event: Event) -> None:
        parts = event.tag.split("/")
        if event.source == "master" and len(parts) == 4 and parts[:2] == ["reactor", "presence"]:
            self.minions[parts[2]] = SimpleNamespace(grains={}, presence=parts[3])
        elif is_valid_minion_id(event.source) and event.source not in ("master", "cli", "reactor"):
            self.minions.setdefault(event.source, SimpleNamespace(grains={}, presence="up"))

    def __call__(self) -> dict[str, SimpleNamespace]:
        return self.minions


def run_offline(rules: RuleSet, events: list[Event | float]) -> list[Step]:
    """Each event with what every candidate rule decided and the actions fired rules would
    take; what came due between them (``for`` holds, absences) as steps of their own."""
    fleet = OfflineFleet()
    engine = Engine(rules, minions=fleet)
    previous: dict[tuple[str, str], Event] = {}
    steps: list[Step] = []
    for item in events:
        clock = item if isinstance(item, float) else item.time
        steps += due_steps(engine, clock)
        if isinstance(item, float):
            continue
        fleet.see(item)
        key = (item.source, item.tag)
        decisions = engine.evaluate(item, previous.get(key), item.time)
        previous[key] = item
        steps.append(_step(item, decisions, item.time))
    return steps


def due_steps(engine: Engine, until: float) -> list[Step]:
    """What came due up to ``until`` (``Engine.due_until``), each a step at its time."""
    return [_step(d.event, [d], at, d.due) for at, d in engine.due_until(until)]


def _step(event: Event, decisions: list[Decision], at: float, due: str | None = None) -> Step:
    step = Step(event, decisions, at, due)
    for decision in decisions:
        if not decision.fired:
            continue
        fired_on = decision.event  # with what a rule over several events matched
        for spec in decision.rule.do:
            entry: dict[str, Any] = {
                "rule": decision.rule.name,
                "kind": spec.kind,
                "label": spec.label_for(fired_on),
            }
            try:
                entry["params"] = spec.render(fired_on)
            except TemplateError as exc:
                entry["error"] = str(exc)
            step.actions.append(entry)
    return step


def load_offline(path: Path, kinds: Mapping[str, KindParser]) -> RuleSet:
    return load_rule_set(rule_paths(path), kinds=kinds)
