"""Decisions of the rules over several events (their specs are in ``multievent.py``).

Each takes the rule, the event, the decision's time and the rule state, and returns whether
the rule fires (with the matched events by name on the copy of the event it fires with) or
why not: what it matched, what it still waits for and until when. With ``commit=False``
(``rules explain``) nothing changes. The state is the engine's ``RuleState``: partial
matches and absences per rule and key (bounded per rule), fleet levels per rule.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

from reactord.base.targeting import Grains
from reactord.protocol.events import Event
from reactord.protocol.ids import derived_id
from reactord.protocol.tags import tag_matches
from reactord.reactor.multievent import Correlation, FleetCondition, Pattern
from reactord.reactor.rulestate import Partial, RuleState, Wait
from reactord.reactor.templates import Template, TemplateError, render_value


class Minion(Protocol):
    """What a fleet rule reads of a minion (the registry's ``MinionRecord``)."""

    @property
    def grains(self) -> Grains: ...

    @property
    def presence(self) -> str: ...


#: The minions a fleet rule looks over, by id (the registry's records, not a copy).
Minions = Callable[[], Mapping[str, Minion]]
#: How long a fleet rule's selection of minions is used before it is made again (it is made
#: again at once when a minion's presence changes or the number of minions does).
SELECTION_TTL = 10.0
PRESENCE_GLOB = "reactor/presence/*/*"
#: How many minion ids a fleet firing names (``events.fleet.data.minions``).
MAX_NAMED = 1000
#: The longest key kept as it is (longer ones are kept as their digest).
MAX_KEY = 256
#: What a fleet rule remembers: the latest events of this many sources, of this many tags each
#: (the least recently seen go first).
MAX_SOURCES = 100_000
MAX_TAGS = 256


@dataclass(frozen=True, slots=True)
class Outcome:
    """``fired`` with ``event`` (the copy carrying ``matched``), or ``reason``; ``None`` from
    a decider means the event is none of the rule's business (left out on the live path)."""

    fired: bool
    event: Event
    reason: str | None = None


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def _until(at: float, now: float) -> str:
    return f"{_clock(at)} ({at - now:+.1f}s)"


def render_key(template: Template | str, event: Event) -> str:
    """The key an event belongs to; ``TemplateError`` when it cannot be rendered (the event is
    then not matched: it would mix with other keys)."""
    value = render_value(template, event)
    return bounded_key(value if isinstance(value, str) else str(value))


def bounded_key(key: str) -> str:
    """A rendered key as rule state keeps it: event data can make it any length, so one past
    ``MAX_KEY`` characters is kept as its digest (distinct keys stay distinct)."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def with_matched(event: Event, matched: Mapping[str, Event]) -> Event:
    return replace(event, matched=dict(matched))


# -- correlate, sequence, absence ----------------------------------------------------------------


def decide_correlation(
    rule: str, spec: Correlation, state: RuleState, event: Event, now: float, commit: bool, explain: bool
) -> Outcome | None:
    tag = event.tag  # Pattern.matches, with the tag's part remembered (below)
    hits = [p for p in spec.patterns if _tag_ok(p.on, tag) and (p.when is None or p.when.holds(event))]
    if not hits:
        if not explain:
            return None
        why = "; ".join(f"{p.name}: {p.failure(event)}" for p in spec.patterns)
        return Outcome(False, event, f"{spec.kind}: matches no pattern ({why})")
    try:
        key = render_key(spec.key, event)
    except TemplateError as exc:
        return Outcome(False, event, f"{spec.kind}: key not rendered, not matched: {exc}")
    if spec.kind == "absence":
        return _absence(rule, spec, state, event, now, commit, key, hits)
    kept = state.partials.get((rule, key))
    partial = _fresh(kept, spec, now)
    if spec.kind == "sequence":
        step = _sequence_step(spec, partial, hits)
        if step is None and kept and not partial:
            return Outcome(
                False,
                event,
                f"sequence: {', '.join(p.name for p in hits)} after the window ran out; waiting for"
                f" {spec.patterns[0].name} (key {key!r})",
            )
        if step is None:
            wanted = spec.patterns[len(partial)].name
            return Outcome(
                False,
                event,
                f"sequence: {', '.join(p.name for p in hits)} out of order; waiting for {wanted}"
                f" (key {key!r})",
            )
        partial = dict(partial) if step else {}
        partial[spec.patterns[step].name] = (now, event)
    else:
        partial = dict(partial)
        for pattern in hits:
            partial[pattern.name] = (now, event)
    if len(partial) >= spec.need:
        if commit:
            state.partials.pop((rule, key))
        return Outcome(True, with_matched(event, {name: e for name, (_, e) in partial.items()}))
    if commit:
        state.partials.put((rule, key), partial)
    missing = [p.name for p in spec.patterns if p.name not in partial]
    first = min(at for at, _ in partial.values())
    have = ", ".join(partial)
    need = "" if spec.kind == "sequence" else f" ({spec.need} of {len(spec.patterns)} needed)"
    awaited = " or ".join(missing[:1] if spec.kind == "sequence" else missing)
    return Outcome(
        False,
        event,
        f"{spec.kind}: matched {', '.join(p.name for p in hits)}; has {have}; waiting for {awaited}{need}"
        f" until {_until(first + spec.within, now)} (key {key!r})",
    )


@lru_cache(maxsize=65536)
def _tag_ok(globs: tuple[str, ...], tag: str) -> bool:
    """``Pattern.tag_ok``, remembered: every event the tag index offers a correlation is tried
    on each of its patterns (a glob match each), and tags repeat (one per minion and beacon)."""
    return any(tag_matches(glob, tag) for glob in globs)


def _fresh(partial: Partial | None, spec: Correlation, now: float) -> Partial:
    """The partial match without what fell out of the window (a sequence: all of it, once
    its first step is older than the window)."""
    if not partial:
        return {}
    if spec.kind == "sequence":
        first = min(at for at, _ in partial.values())
        return partial if now - first <= spec.within else {}
    return {name: (at, e) for name, (at, e) in partial.items() if now - at <= spec.within}


def _sequence_step(spec: Correlation, partial: Partial, hits: list[Pattern]) -> int | None:
    """The step this event takes: the next expected one, else a new start (the first
    pattern), else None (out of order)."""
    expected = spec.patterns[len(partial)]
    if expected in hits:
        return len(partial)
    if spec.patterns[0] in hits:
        return 0
    return None


def _absence(
    rule: str,
    spec: Correlation,
    state: RuleState,
    event: Event,
    now: float,
    commit: bool,
    key: str,
    hits: list[Pattern],
) -> Outcome:
    first, second = spec.patterns
    wait = state.waits.get((rule, key))
    if second in hits and wait is not None and now > wait.deadline:
        # the deadline passed before the tick fired it (a master that was down): it fires
        return Outcome(
            False,
            event,
            f"absence: {second.name} came after the deadline {_clock(wait.deadline)} (key {key!r})",
        )
    if second in hits and wait is not None:
        if commit:
            state.waits.pop((rule, key))
        return Outcome(
            False,
            event,
            f"absence: {second.name} came in time for the {first.name} at {_clock(wait.event.time)}"
            f" (key {key!r})",
        )
    if first not in hits:
        return Outcome(False, event, f"absence: no {first.name} waits for this {second.name} (key {key!r})")
    if wait is not None:
        return Outcome(
            False,
            event,
            f"absence: already waiting since the {first.name} at {_clock(wait.event.time)} for"
            f" {second.name} until {_until(wait.deadline, now)} (key {key!r})",
        )
    deadline = now + spec.within
    if commit:
        state.waits.put((rule, key), Wait(deadline, event))
    return Outcome(
        False, event, f"absence: waiting for {second.name} until {_until(deadline, now)} (key {key!r})"
    )


def next_wait(state: RuleState) -> float | None:
    return min((wait.deadline for _, wait in state.waits.all_items()), default=None)


def due_waits(state: RuleState, rules: Mapping[str, Any], now: float) -> list[tuple[Any, Event]]:
    """Absences whose deadline has come: (rule, the first event carrying ``matched``), in
    deadline order; their waits are dropped."""
    due = []
    for key, wait in state.waits.all_items():
        if wait.deadline <= now:
            due.append((wait.deadline, key, wait))
    out = []
    for _, key, wait in sorted(due, key=lambda d: (d[0], d[2].event.id)):
        state.waits.pop(key)
        rule = rules.get(key[0])
        if rule is None or not rule.enabled or not isinstance(rule.multi, Correlation):
            continue  # (a rule disabled or changed by a reload: its wait ends, it never fires)
        if rule.multi.kind != "absence":
            continue
        out.append((rule, with_matched(wait.event, {rule.multi.patterns[0].name: wait.event})))
    return out


def sweep_partials(rules: Iterable[Any], state: RuleState, now: float, *, full: bool = False) -> None:
    """Drop the partial matches whose window has passed (by the tick): they could no longer
    complete, and would otherwise stay counted until touched or pushed out by the limit."""
    for rule in rules:
        spec = rule.multi
        if isinstance(spec, Correlation) and spec.kind != "absence":
            state.partials.sweep(rule.name, _expiry(spec, now), full=full)


def _expiry(spec: Correlation, now: float) -> Callable[[Partial], bool]:
    """Whether a partial match's window has passed: a sequence's first step, a correlation's
    latest match (``_fresh`` drops the older ones as it goes) older than the window."""
    first = spec.kind == "sequence"

    def expired(partial: Partial) -> bool:
        times = [at for at, _ in partial.values()]
        return now - (min(times) if first else max(times)) > spec.within

    return expired


# -- fleet ---------------------------------------------------------------------------------------


class FleetMembers:
    """Per fleet rule, each minion's latest event on the rule's tags: when it came and whether
    ``when`` held on it. Kept in memory; filled at start from the fleet state table, which is
    stored (so it survives a restart without rule state of its own)."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, dict[str, tuple[float, bool]]]] = {}
        self._selected: dict[str, tuple[float, int, list[str]]] = {}

    def seed(self, rule: str, spec: FleetCondition, events: Iterable[Event]) -> None:
        self.latest[rule] = {}
        for event in sorted((e for e in events if spec.tag_ok(e.tag)), key=lambda e: e.received or e.time):
            self.see(rule, spec, event, event.received or event.time)

    def keep(self, rules: set[str]) -> None:
        for rule in [r for r in self.latest if r not in rules]:
            del self.latest[rule]
        self._selected.clear()

    def see(self, rule: str, spec: FleetCondition, event: Event, now: float) -> None:
        holds = spec.when is None or spec.when.holds(event)
        sources = self.latest.setdefault(rule, {})
        tags = sources.pop(event.source, None) or {}
        tags.pop(event.tag, None)
        tags[event.tag] = (now, holds)  # the most recent last: the oldest go first
        if len(tags) > MAX_TAGS:
            del tags[next(iter(tags))]
        sources[event.source] = tags
        if len(sources) > MAX_SOURCES:
            del sources[next(iter(sources))]

    def selected(self, rule: str, spec: FleetCondition, minions: Mapping[str, Minion]) -> list[str]:
        """The minions ``spec.target`` selects, remembered (target matching is the costly part)."""
        cached = self._selected.get(rule)
        clock = time.monotonic()
        if cached is not None and cached[0] > clock and cached[1] == len(minions):
            return cached[2]
        chosen = [m for m, record in minions.items() if spec.target.matches(m, record.grains)]
        self._selected[rule] = (clock + SELECTION_TTL, len(minions), chosen)
        return chosen

    def presence_changed(self) -> None:
        self._selected.clear()

    def count(
        self, rule: str, spec: FleetCondition, minions: Mapping[str, Minion], now: float
    ) -> tuple[list[str], int]:
        """The selected minions that match, and how many are selected."""
        selected = self.selected(rule, spec, minions)
        table = self.latest.get(rule, {})
        matching = []
        for minion in selected:
            record = minions.get(minion)
            if record is None or (spec.presence != "any" and record.presence != spec.presence):
                continue
            if spec.on:
                tags = table.get(minion, {})
                assert spec.max_age is not None
                if not any(holds and now - at <= spec.max_age for at, holds in tags.values()):
                    continue
            matching.append(minion)
        return sorted(matching), len(selected)


def decide_fleet(
    rule: str,
    spec: FleetCondition,
    state: RuleState,
    members: FleetMembers,
    minions: Mapping[str, Minion],
    event: Event,
    now: float,
    commit: bool,
    explain: bool,
) -> Outcome | None:
    presence = tag_matches(PRESENCE_GLOB, event.tag) and event.source == "master"
    if presence and commit:
        members.presence_changed()
    if not presence and not spec.tag_ok(event.tag):
        return Outcome(False, event, f"fleet: tag is not {' or '.join(spec.on)}") if explain else None
    if commit and not presence:
        members.see(rule, spec, event, now)
    if not commit and not presence:  # explain: as if this event were taken
        shadow = FleetMembers()
        shadow.latest[rule] = {m: dict(t) for m, t in members.latest.get(rule, {}).items()}
        shadow.see(rule, spec, event, now)
        members = shadow
    matching, total = members.count(rule, spec, minions, now)
    value = 100.0 * len(matching) / total if spec.percent and total else float(len(matching))
    high = bool(state.levels.get((rule, "")))
    shown = f"{len(matching)} of {total} selected minions match" + (
        f" ({value:.1f}%)" if spec.percent else ""
    )
    level = f"{spec.level:g}{spec.unit()}"
    if not high and value >= spec.level:
        if commit:
            state.levels.put((rule, ""), True)
        summary = Event(
            id=derived_id(event.received or now, f"{event.id}/{rule}/fleet"),
            tag=f"reactor/fleet/{rule}",
            source="master",
            time=now,
            data={
                "count": len(matching),
                "total": total,
                "percent": round(100.0 * len(matching) / total, 3) if total else 0.0,
                "minions": matching[:MAX_NAMED],
            },
            received=now,
        )
        return Outcome(True, with_matched(event, {"fleet": summary}))
    if high and value <= spec.clear:
        if commit:
            state.levels.pop((rule, ""))
        return Outcome(False, event, f"fleet: {shown}: fell {_clear(spec)}; re-armed")
    if high:
        return Outcome(
            False,
            event,
            f"fleet: {shown}; fired at {level}, fires again after falling {_clear(spec)}",
        )
    return Outcome(False, event, f"fleet: {shown}; fires at {level}")


def _clear(spec: FleetCondition) -> str:
    """The clear level in words: "to 20%", or "below 50%" when none was given."""
    if spec.clear_given:
        return f"to {spec.clear:g}{spec.unit()}"
    return f"below {spec.level:g}{spec.unit()}"


def fleet_lapses(
    rules: Iterable[Any],
    state: RuleState,
    members: FleetMembers,
    minions: Mapping[str, Minion],
    now: float,
) -> None:
    """FleetCondition rules whose count fell to their clear level as latest events aged past
    ``max_age`` (no event says so): re-armed, by the tick."""
    for rule in rules:
        spec = rule.multi
        if not isinstance(spec, FleetCondition) or not spec.on or not state.levels.get((rule.name, "")):
            continue
        matching, total = members.count(rule.name, spec, minions, now)
        value = 100.0 * len(matching) / total if spec.percent and total else float(len(matching))
        if value <= spec.clear:
            state.levels.pop((rule.name, ""))
