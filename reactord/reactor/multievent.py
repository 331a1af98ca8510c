"""Rules that see more than one event: what a rule file says, checked into frozen values.

``correlate`` (named patterns joined by all, any or a count, within a window, per key),
``sequence`` (the patterns in order within a window, per key), ``absence`` (the first
pattern, then not the second with the same key within a time) and ``fleet`` (of the minions
a target selects, how many have a fresh latest event that holds a condition). The decisions
are in ``correlate.py``; the reference with an example of each is docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactord.base.errors import TargetError
from reactord.base.targeting import TARGET_TYPES, Target, compile_target
from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import TagError
from reactord.protocol.events import Event
from reactord.protocol.tags import tag_matches, validate_pattern
from reactord.reactor.conditions import Condition, Counter, compile_condition
from reactord.reactor.templates import Template, compile_template

KINDS = ("correlate", "sequence", "absence", "fleet")
#: The longest window or wait a rule may keep state for: its keys are bounded in time too.
MAX_WINDOW = 7 * 86400.0
DEFAULT_MAX_KEYS = 10_000
MAX_KEYS = 1_000_000
_WINDOWED = ("events", "within", "key", "max_keys")
_KEYS = {
    "correlate": (*_WINDOWED, "need"),
    "sequence": _WINDOWED,
    "absence": _WINDOWED,
    "fleet": ("target", "target_type", "on", "when", "max_age", "presence", "count", "percent", "clear"),
}
PRESENCE = ("up", "suspect", "down", "any")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One named event pattern: tag globs and an optional ``when``."""

    name: str
    on: tuple[str, ...]
    when: Condition | None = None

    def tag_ok(self, tag: str) -> bool:
        return any(tag_matches(glob, tag) for glob in self.on)

    def matches(self, event: Event) -> bool:
        return self.tag_ok(event.tag) and (self.when is None or self.when.holds(event))

    def failure(self, event: Event) -> str | None:
        """None when ``event`` matches; else why not."""
        if not self.tag_ok(event.tag):
            return f"tag is not {' or '.join(self.on)}"
        return self.when.failure(event) if self.when is not None else None


@dataclass(frozen=True, slots=True)
class Correlation:
    """``correlate``, ``sequence`` or ``absence``: patterns, a window, a key, a key limit.

    ``need``: how many of the patterns must have matched (``correlate``; all of them for a
    sequence). For an absence, ``patterns[0]`` starts the wait and ``patterns[1]`` ends it."""

    kind: str
    patterns: tuple[Pattern, ...]
    within: float
    key: Template | str
    max_keys: int
    need: int

    @property
    def globs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(glob for p in self.patterns for glob in p.on))

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.patterns)
        if self.kind == "sequence":
            return f"sequence {' then '.join(p.name for p in self.patterns)} within {self.within:g}s"
        if self.kind == "absence":
            first, second = self.patterns
            return f"absence: {first.name}, then no {second.name} within {self.within:g}s"
        joined = "all" if self.need == len(self.patterns) else "any" if self.need == 1 else str(self.need)
        return f"correlate {joined} of {names} within {self.within:g}s"


@dataclass(frozen=True, slots=True)
class FleetCondition:
    """Of the minions ``target`` selects, how many (or what percent) are in ``presence`` and,
    with ``on``, have a latest event on those tags, at most ``max_age`` old, where ``when``
    holds. Fires when that reaches ``level``; fires again only after it fell to ``clear``."""

    target: Target
    on: tuple[str, ...]
    when: Condition | None
    max_age: float | None
    presence: str
    level: float
    clear: float
    percent: bool
    clear_given: bool = False

    def describe(self) -> str:
        level = f"{self.level:g}{self.unit()}"
        tags = f" with a latest {' or '.join(self.on)} at most {self.max_age:g}s old" if self.on else ""
        when = " where when holds" if self.when is not None else ""
        return f"fleet: {level} of {self.target.text} {self.presence}{tags}{when}"

    def tag_ok(self, tag: str) -> bool:
        return any(tag_matches(glob, tag) for glob in self.on)

    def unit(self) -> str:
        return "%" if self.percent else ""


Spec = Mapping[str, Any]


def parse_multi(kind: str, value: Any, counter: Counter, nodegroups: Mapping[str, str] | None) -> Any:
    """A ``Correlation`` or a ``FleetCondition`` from a rule's ``kind:`` value; ``ValueError`` naming
    the key that is wrong."""
    if not isinstance(value, dict):
        raise ValueError("expected a mapping (see docs/rules.md)")
    for key in value:
        if key not in _KEYS[kind]:
            raise ValueError(f"{key}: unknown key (known: {', '.join(_KEYS[kind])})")
    if kind == "fleet":
        return _fleet(value, counter, nodegroups)
    return _correlation(kind, value, counter)


def _correlation(kind: str, value: Spec, counter: Counter) -> Correlation:
    raw = value.get("events")
    if not isinstance(raw, dict) or len(raw) < 2:
        raise ValueError("events: expected two or more named patterns, {name: {on: GLOB, when: ...}}")
    if kind == "absence" and len(raw) != 2:
        raise ValueError(
            "events: an absence names two patterns: the one that starts the wait, then the one awaited"
        )
    patterns = tuple(_pattern(name, spec, counter) for name, spec in raw.items())
    if "within" not in value:
        raise ValueError("within: a window is required (state is kept per key only that long)")
    within = _bounded_duration(value["within"], "within")
    key = _key(value.get("key", ""))
    max_keys = value.get("max_keys", DEFAULT_MAX_KEYS)
    if type(max_keys) is not int or not 1 <= max_keys <= MAX_KEYS:
        raise ValueError(f"max_keys: expected an integer from 1 to {MAX_KEYS}")
    need = len(patterns)
    if kind == "correlate":
        need = _need(value.get("need", "all"), len(patterns))
    return Correlation(kind, patterns, within, key, max_keys, need)


def _pattern(name: Any, spec: Any, counter: Counter) -> Pattern:
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 64:
        raise ValueError(f"events: {name!r} is not a name (letters, digits and '_', not first a digit)")
    if isinstance(spec, (str, list)):
        spec = {"on": spec}
    if not isinstance(spec, dict) or set(spec) - {"on", "when"} or "on" not in spec:
        raise ValueError(f"events.{name}: expected {{on: GLOB, when: CONDITION}}")
    globs = _globs(spec["on"], f"events.{name}.on")
    when = compile_condition(spec["when"], f"events.{name}.when", counter) if "when" in spec else None
    return Pattern(name, globs, when)


def _globs(value: Any, where: str) -> tuple[str, ...]:
    globs = [value] if isinstance(value, str) else value
    if not isinstance(globs, list) or not globs:
        raise ValueError(f"{where}: expected a tag glob or a list of them")
    for glob in globs:
        try:
            validate_pattern(glob)
        except TagError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return tuple(globs)


def _need(value: Any, count: int) -> int:
    if value == "all":
        return count
    if value == "any":
        return 1
    if type(value) is int and 1 <= value <= count:
        return value
    raise ValueError(f"need: expected all, any or a number from 1 to {count} (the patterns named)")


def _bounded_duration(value: Any, where: str) -> float:
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not 0 < seconds <= MAX_WINDOW:
        raise ValueError(f"{where}: expected more than 0s and at most 7d")
    return seconds


def _key(value: Any) -> Template | str:
    """A key template over the matched event's envelope and data (never ``events.``: a key
    is rendered on one event, before anything is matched)."""
    if not isinstance(value, str):
        raise ValueError("key: expected a template like '{{ source }}' or '{{ data.service }}'")
    try:
        key = compile_template(value)
    except ValueError as exc:
        raise ValueError(f"key: {exc}") from None
    if isinstance(key, Template):
        paths = [key.whole] if key.whole is not None else [p for p in key.pieces if isinstance(p, tuple)]
        for path in paths:
            if path and path[0] == "events":
                raise ValueError("key: renders on each event as it comes; events.NAME is for the actions")
    return key


def _fleet(value: Spec, counter: Counter, nodegroups: Mapping[str, str] | None) -> FleetCondition:
    target_type = value.get("target_type", "glob")
    if target_type not in TARGET_TYPES:
        raise ValueError(f"target_type: expected one of {', '.join(TARGET_TYPES)}")
    try:
        target = compile_target(
            value.get("target", ""), target_type, nodegroups, syntax_only=nodegroups is None
        )
    except TargetError as exc:
        raise ValueError(f"target: {exc}") from None
    on = _globs(value["on"], "on") if "on" in value else ()
    when = compile_condition(value["when"], "when", counter) if "when" in value else None
    if when is not None and not on:
        raise ValueError("when: a condition over the minions' latest events needs on: TAG GLOB")
    max_age = None
    if on:
        if "max_age" not in value:
            raise ValueError("max_age: required with on (how recent a minion's latest event must be)")
        max_age = _bounded_duration(value["max_age"], "max_age")
    elif "max_age" in value:
        raise ValueError("max_age: only with on")
    presence = value.get("presence", "up")
    if presence not in PRESENCE:
        raise ValueError(f"presence: expected one of {', '.join(PRESENCE)}")
    if ("count" in value) == ("percent" in value):
        raise ValueError("expected one of count: N or percent: P (how many minions must match)")
    percent = "percent" in value
    level = _level(value["percent" if percent else "count"], "percent" if percent else "count", percent)
    if "clear" in value:
        clear = _level(value["clear"], "clear", percent, zero=True)
        if clear >= level:
            raise ValueError(f"clear: must be below the level it re-arms ({level:g})")
    else:
        clear = level - (1e-9 if percent else 1)
    return FleetCondition(target, on, when, max_age, presence, level, clear, percent, "clear" in value)


def _level(value: Any, where: str, percent: bool, zero: bool = False) -> float:
    low = 0 if zero else (1e-9 if percent else 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{where}: expected a number")
    if (not percent and type(value) is not int) or value < low or (percent and value > 100):
        unit = "a percentage from 0 to 100" if percent else "a whole number of minions"
        raise ValueError(f"{where}: expected {unit}{'' if zero else ', more than 0'}")
    return float(value)
