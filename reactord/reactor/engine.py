"""The decision engine: for one event, which rules fire, and why the others did not.

Steps for each rule the tag index offers: ``when`` (stateless), ``changed``/``from``/``to``
(against the previous event of the same source and tag), ``for`` (the condition must hold
that long), ``threshold`` (N within a window) and ``throttle`` (once within a window). The
first step that fails is the reason recorded for the decision.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from reactord.protocol.events import Event
from reactord.reactor.conditions import Counter, show_value
from reactord.reactor.correlate import (
    FleetMembers,
    Minions,
    bounded_key,
    decide_correlation,
    decide_fleet,
    due_waits,
    fleet_lapses,
    next_wait,
    sweep_partials,
)
from reactord.reactor.index import TagIndex
from reactord.reactor.multievent import Correlation, FleetCondition
from reactord.reactor.paths import MISSING, resolve
from reactord.reactor.rules import Rule, RuleSet
from reactord.reactor.rulestate import Hold, RuleState
from reactord.reactor.templates import Template, TemplateError, render_value

log = logging.getLogger("reactord.reactor")
#: How often the tick looks at every partial match for windows that passed (in between, it
#: looks at each rule's least recently used ones only).
FULL_SWEEP = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    rule: Rule
    event: Event
    fired: bool
    reason: str | None = None  # why it did not fire (or "holding ..." while a `for` runs)
    due: str | None = None  # decided by the clock, not an event: "for" (a hold) or "absence"

    def public(self) -> dict[str, object]:
        out: dict[str, object] = {"rule": self.rule.name, "fired": self.fired}
        if self.reason:
            out["reason"] = self.reason
        return out


class Engine:
    def __init__(
        self,
        rules: RuleSet,
        state: RuleState | None = None,
        *,
        max_depth: int = 8,
        minions: Minions | None = None,
    ) -> None:
        self.state = state or RuleState()
        self.max_depth = max_depth
        self.rules = rules
        self.index: TagIndex[Rule] = _index(rules)
        self._candidates: dict[str, list[Rule]] = {}
        self.fire_counts: dict[str, int] = {}
        self.errors = 0  # evaluations that raised (recorded as the rule's decision)
        #: The fleet fleet rules count over (none: they see no minion).
        self.minions: Minions = minions or dict
        self.members = FleetMembers()
        self._swept = 0.0  # when the tick last looked at every partial match
        self._by_name = rules.by_name()
        self.state.partials.limit = self.state.waits.limit = self._max_keys

    @property
    def counter(self) -> Counter:
        return self.rules.counter

    def swap(self, rules: RuleSet) -> None:
        """Use a new rule set (state of rules that remain is kept; a rule over several events
        whose definition changed starts again: its keys and patterns may mean something else)."""
        for rule in rules.rules:
            if rule.multi is None:
                continue
            digest = _multi_digest(rule)
            if self.state.specs.get((rule.name, "")) not in (None, digest):
                self.state.forget_rule(rule.name)
            if self.state.specs.get((rule.name, "")) != digest:
                self.state.specs.put((rule.name, ""), digest)
        self.rules = rules
        self.index = _index(rules)
        self._candidates = {}
        self._by_name = rules.by_name()
        self.state.forget_rules({r.name for r in rules.rules})
        self.state.partials.set_limits()
        self.state.waits.set_limits()
        self.members.keep({r.name for r in rules.rules if isinstance(r.multi, FleetCondition)})

    def _max_keys(self, rule: str) -> int:
        found = self._by_name.get(rule)
        return found.multi.max_keys if found is not None and isinstance(found.multi, Correlation) else 1

    def seed_fleet(self, latest: Iterable[Event], only: set[str] | None = None) -> None:
        """Fill what fleet rules know of each minion's latest events (at start, from the
        stored fleet state table; after a reload, for the rules that are new)."""
        rows = list(latest)
        for rule in self.rules.rules:
            if isinstance(rule.multi, FleetCondition) and (only is None or rule.name in only):
                self.members.seed(rule.name, rule.multi, rows)

    def candidates(self, tag: str) -> list[Rule]:
        """The enabled rules whose globs match ``tag`` (cached per tag: tags repeat)."""
        cached = self._candidates.get(tag)
        if cached is not None:
            return cached
        found = self._find(tag)
        if len(self._candidates) >= 65536:
            self._candidates.clear()
        self._candidates[tag] = found
        return found

    def _find(self, tag: str) -> list[Rule]:
        seen: set[str] = set()
        out = []
        for rule in self.index.candidates(tag):
            if rule.name not in seen and rule.enabled:
                seen.add(rule.name)
                out.append(rule)
        return out

    def evaluate(
        self, event: Event, previous: Event | None, now: float, *, commit: bool = True, explain: bool = True
    ) -> list[Decision]:
        """Decide every candidate rule for ``event``; with ``commit=False`` nothing changes.

        With ``explain=False`` (the live path), rules that miss on ``when`` or ``changed``
        are left out: those misses depend only on the event and the one before it, so
        ``rules explain`` can work them out again; everything else is returned.
        """
        decisions = []
        for rule in self.candidates(event.tag):
            try:
                decision = self._decide(rule, event, previous, now, commit, explain)
            except Exception as exc:  # recorded as this rule's decision: one rule never stops the rest
                self.errors += 1
                decision = Decision(rule, event, False, f"error: {type(exc).__name__}: {exc}"[:500])
                log.warning(
                    "rule %s could not be evaluated on %s: %s",
                    rule.name,
                    event.tag,
                    decision.reason,
                    extra={"rule": rule.name, "event_id": event.id},
                )
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _decide(
        self, rule: Rule, event: Event, previous: Event | None, now: float, commit: bool, explain: bool = True
    ) -> Decision | None:
        if event.depth >= self.max_depth:
            return Decision(
                rule,
                event,
                False,
                (
                    f"depth limit: this event is {event.depth} actions deep (max_depth {self.max_depth}); "
                    "a rule may be firing its own trigger"
                ),
            )
        if rule.multi is not None:
            return self._decide_multi(rule, event, now, commit, explain)
        reason: str | Quiet | None
        if explain:
            reason = rule.when.failure(event) if rule.when is not None else None
        else:
            reason = None if rule.when is None or rule.when.holds(event) else QUIET
        hold = None
        if rule.hold is not None:
            key = (rule.name, f"{event.source}\0{event.tag}")
            hold = self.state.holds.get(key)
        if reason is None and rule.changed is not None:
            # With `for`, the change starts the hold; then the value must stay what it became.
            if hold is not None:
                reason = _still_failure(rule, event, hold.event)
            else:
                reason = _changed_failure(rule, event, previous, explain)
        if reason is QUIET:  # left out of the live path's decisions; it ends a running `for`
            if hold is not None and commit:
                self.state.holds.pop(key)
            return None
        if rule.hold is not None:
            if reason is not None:
                if hold is not None and commit:
                    self.state.holds.pop(key)
                return Decision(rule, event, False, reason)
            if hold is None:
                hold = Hold(now, event)
            elif not hold.fired:
                hold = Hold(hold.since, event)
            if commit:
                self.state.holds.put(key, hold)
            if hold.fired:
                return Decision(rule, event, False, "for: already fired while the condition keeps holding")
            if now - hold.since < rule.hold:
                return Decision(rule, event, False, f"for: holding {now - hold.since:.1f}s of {rule.hold:g}s")
            if commit:
                hold.fired = True
                self.state.holds.put(key, hold)
        if reason is None:
            reason = self._limits(rule, event, now, commit)
        if reason is None and commit:
            self.fire_counts[rule.name] = self.fire_counts.get(rule.name, 0) + 1
        return Decision(rule, event, reason is None, reason)

    def _decide_multi(
        self, rule: Rule, event: Event, now: float, commit: bool, explain: bool
    ) -> Decision | None:
        """A rule over several events (``correlate.py``), then its throttle."""
        spec = rule.multi
        if isinstance(spec, FleetCondition):
            outcome = decide_fleet(
                rule.name, spec, self.state, self.members, self.minions(), event, now, commit, explain
            )
        else:
            assert spec is not None
            outcome = decide_correlation(rule.name, spec, self.state, event, now, commit, explain)
        if outcome is None:
            return None
        if not outcome.fired:
            return Decision(rule, outcome.event, False, outcome.reason)
        reason = self._limits(rule, outcome.event, now, commit)
        if reason is None and commit:
            self.fire_counts[rule.name] = self.fire_counts.get(rule.name, 0) + 1
        return Decision(rule, outcome.event, reason is None, reason)

    def next_due(self) -> float | None:
        """When the first running ``for`` hold or absence comes due (None when none is)."""
        rules = self._by_name
        due = [
            hold.since + rule.hold
            for key, hold in self.state.holds.items.items()
            if not hold.fired and (rule := rules.get(key[0])) is not None and rule.hold is not None
        ]
        wait = next_wait(self.state)
        if wait is not None:
            due.append(wait)
        return min(due, default=None)

    def due_holds(self, now: float) -> list[Decision]:
        """``for`` conditions that have now held long enough and absences whose wait ended
        (fired by the master's tick); fleet levels whose count aged down re-armed."""
        fired = self._due_holds(now)
        for rule, event in due_waits(self.state, self._by_name, now):
            reason = self._limits(rule, event, now, True)
            if reason is None:
                self.fire_counts[rule.name] = self.fire_counts.get(rule.name, 0) + 1
            fired.append(Decision(rule, event, reason is None, reason, due="absence"))
        if self.members.latest:
            fleet_lapses(self.rules.rules, self.state, self.members, self.minions(), now)
        full = now - self._swept >= FULL_SWEEP or now < self._swept
        if full:
            self._swept = now
        sweep_partials(self.rules.rules, self.state, now, full=full)
        return fired

    def due_until(self, until: float) -> list[tuple[float, Decision]]:
        """What came due up to ``until``, each decided at the time it came due (as the tick
        would have fired it), in order; for a run driven by the events' own times (``rules
        test``, replay)."""
        out: list[tuple[float, Decision]] = []
        while (due := self.next_due()) is not None and due <= until:
            # (one step past ``due`` if the sum since + hold rounded down)
            fired = self.due_holds(due) or self.due_holds(math.nextafter(due, math.inf))
            if not fired:
                break
            out += [(due, d) for d in fired]
        out += [(until, d) for d in self.due_holds(until)]
        return out

    def _due_holds(self, now: float) -> list[Decision]:
        fired = []
        rules = self._by_name
        for key, hold in list(self.state.holds.items.items()):
            rule = rules.get(key[0])
            if rule is None or hold.fired or rule.hold is None or now - hold.since < rule.hold:
                continue
            if not rule.enabled:  # disabled by a reload: its hold ends, it never fires
                self.state.holds.pop(key)
                continue
            hold.fired = True
            self.state.holds.put(key, hold)
            reason = self._limits(rule, hold.event, now, True)
            if reason is None:
                self.fire_counts[rule.name] = self.fire_counts.get(rule.name, 0) + 1
            fired.append(Decision(rule, hold.event, reason is None, reason, due="for"))
        return fired

    def _limits(self, rule: Rule, event: Event, now: float, commit: bool) -> str | None:
        if rule.threshold is not None:
            limit = rule.threshold
            key = (rule.name, _key(limit.key, event))
            window = self.state.windows.get(key)
            times = deque(window or ())
            times.append(now)
            while times and times[0] <= now - limit.within:
                times.popleft()
            if len(times) < limit.count:
                if commit:
                    self.state.windows.put(key, times)
                return (
                    f"threshold: {len(times)} of {limit.count} within {limit.within:g}s (key {_show(key[1])})"
                )
            if commit:
                self.state.windows.pop(key)
        if rule.throttle is not None:
            key = (rule.name, _key(rule.throttle.key, event))
            last = self.state.throttles.get(key)
            if last is not None and now - last < rule.throttle.once_within:
                return (
                    f"throttle: fired {now - last:.1f}s ago for key {_show(key[1])} "
                    f"(once within {rule.throttle.once_within:g}s)"
                )
            if commit:
                self.state.throttles.put(key, now)
        return None


def _multi_digest(rule: Rule) -> str:
    """A rule over several events as its file wrote it, as a digest: its state is kept while
    this stays the same, across reloads and restarts (its compiled parts compare by identity)."""
    written = {
        kind: rule.spec.get(kind)
        for kind in ("correlate", "sequence", "absence", "fleet")
        if kind in rule.spec
    }
    text = json.dumps(written, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _index(rules: RuleSet) -> TagIndex[Rule]:
    return TagIndex((pattern, rule) for rule in rules.rules for pattern in rule.on)


def _key(template: Template | str, event: Event) -> str:
    try:
        value = render_value(template, event)
    except TemplateError:
        return "<missing>"
    return bounded_key(value if isinstance(value, str) else str(value))


class Quiet(enum.Enum):
    """A miss on ``when`` or ``changed``, not spelled out on the live path (explain works it
    out): a sentinel, never a reason text, so no reason can be taken for it."""

    QUIET = "missed on when or changed"


QUIET: Final = Quiet.QUIET


def _changed_failure(
    rule: Rule, event: Event, previous: Event | None, explain: bool = True
) -> str | Quiet | None:
    """None when a watched value changed (and matches from/to); else why not (``QUIET``
    without ``explain``)."""
    changed = rule.changed
    assert changed is not None
    unchanged = []
    for parts, written in zip(changed.paths, changed.written, strict=True):
        now_value = resolve(event, parts)
        before = resolve(previous, parts) if previous is not None else MISSING
        if now_value == before and type(now_value) is type(before):
            if explain:
                unchanged.append(f"changed {written}: still {_show(now_value)}")
            continue
        if changed.from_ is not None and not changed.from_.ok(before):
            return f"from {written}: {changed.from_.failure(before)}" if explain else QUIET
        if changed.to is not None and not changed.to.ok(now_value):
            return f"to {written}: {changed.to.failure(now_value)}" if explain else QUIET
        return None
    return "; ".join(unchanged) if explain else QUIET


def _still_failure(rule: Rule, event: Event, started: Event) -> str | None:
    """None while every watched value is still what it became when the hold started."""
    changed = rule.changed
    assert changed is not None
    for parts, written in zip(changed.paths, changed.written, strict=True):
        now_value, then = resolve(event, parts), resolve(started, parts)
        if now_value != then or type(now_value) is not type(then):
            return f"changed {written}: changed again, from {_show(then)} to {_show(now_value)}"
    if changed.to is not None and (why := changed.to.failure(resolve(event, changed.paths[0]))):
        return f"to {changed.written[0]}: {why}"
    return None


def _show(value: object) -> str:
    return show_value(value, missing="missing")
