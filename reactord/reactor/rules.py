"""Rules: YAML files validated into frozen ``Rule`` values, with errors naming file, line and key.

A rule file holds ``rules:``, a list of rules. The full reference, with an example per
feature, is docs/rules.md. A rule set loads all or nothing: one bad file and the whole
set is refused, so a reload never leaves half a rule set running.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from reactord.base.errors import TargetError
from reactord.base.targeting import compile_target
from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import ReactordError, TagError
from reactord.protocol.tags import validate_pattern
from reactord.protocol.yamlfile import LineDict, load_with_lines
from reactord.reactor.actionspec import ActionSpec, KindParser, parse_action
from reactord.reactor.conditions import Condition, Counter, ValueTest, compile_condition, compile_value_test
from reactord.reactor.multievent import KINDS as MULTI_KINDS
from reactord.reactor.multievent import Correlation, FleetCondition, parse_multi
from reactord.reactor.paths import validate_path
from reactord.reactor.templates import Template, compile_template, paths_in

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
RULE_KEYS = (
    "name",
    "description",
    "enabled",
    "on",
    "when",
    "changed",
    "from",
    "to",
    "for",
    "throttle",
    "threshold",
    "correlate",
    "sequence",
    "absence",
    "fleet",
    "do",
)
#: Tags a fleet rule also looks at: a minion's presence changing changes what it counts.
PRESENCE_TAGS = "reactor/presence/*/*"
#: Keys that say what one event must be; a rule over several events says it per pattern.
_SINGLE = ("on", "when", "changed", "from", "to", "for", "threshold")
MAX_RULE_FILE = 4 << 20


class RuleError(ReactordError):
    """A rule file that is not valid: ``file:line: key: message``."""

    def __init__(self, path: str, line: int, key: str, message: str) -> None:
        self.path, self.line, self.key, self.message = path, line, key, message
        super().__init__(f"{path}:{line}: {key}: {message}" if key else f"{path}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class Throttle:
    once_within: float
    key: Template | str


@dataclass(frozen=True, slots=True)
class Threshold:
    count: int
    within: float
    key: Template | str


@dataclass(frozen=True, slots=True)
class Changed:
    paths: tuple[tuple[str, ...], ...]
    written: tuple[str, ...]
    from_: ValueTest | None = None
    to: ValueTest | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    on: tuple[str, ...]
    do: tuple[ActionSpec, ...]
    when: Condition | None = None
    changed: Changed | None = None
    hold: float | None = None  # `for:` — the condition must hold this long
    throttle: Throttle | None = None
    threshold: Threshold | None = None
    #: ``correlate``/``sequence``/``absence`` (a Correlation) or ``fleet`` (a FleetCondition).
    multi: Correlation | FleetCondition | None = None
    description: str = ""
    enabled: bool = True
    file: str = ""
    line: int = 0
    spec: dict[str, Any] = field(default_factory=dict, compare=False)


class _Where:
    """Builds errors for one file: ``where.error(mapping, key, "...")``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, mapping: Any, key: Any, dotted: str, message: str) -> RuleError:
        line = mapping.line_of(key) if isinstance(mapping, LineDict) else 0
        return RuleError(self.path, line, dotted, message)


def load_rules_text(text: str, path: str, counter: Counter, *, kinds: Mapping[str, KindParser]) -> list[Rule]:
    """Parse and validate one rule file's text; ``kinds``: the action kinds by name (the shipped
    ones are ``reactord.actions.kinds.KINDS``)."""
    try:
        data = load_with_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(path, line, "", f"invalid YAML: {problem}") from exc
    where = _Where(path)
    if data is None:
        return []
    if not isinstance(data, LineDict) or set(data) - {"rules"}:
        extra = sorted(set(data) - {"rules"}) if isinstance(data, dict) else []
        raise RuleError(
            path,
            getattr(data, "line", 1),
            str(extra[0]) if extra else "",
            "a rule file is a mapping with one key, rules: [...]",
        )
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise where.error(data, "rules", "rules", "expected a list of rules")
    return [_rule(spec, f"rules[{i}]", where, data, counter, kinds) for i, spec in enumerate(rules)]


def _rule(
    spec: Any, dotted: str, where: _Where, parent: LineDict, counter: Counter, kinds: Mapping[str, KindParser]
) -> Rule:
    """One rule, checked key by key in the order a reader meets them in the file, each error
    naming its line and key. Past 60 lines on purpose: one short check per rule key, in
    order; the parsing of each key's value is in its own function."""
    if not isinstance(spec, LineDict):
        raise where.error(parent, "rules", dotted, "a rule is a mapping")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise where.error(
            spec, "name", f"{dotted}.name", "every rule needs a name: letters, digits, '_', '-', '.', ':'"
        )
    dotted = f"{dotted} ({name})"
    for key in spec:
        if key not in RULE_KEYS:
            raise where.error(spec, key, f"{dotted}.{key}", f"unknown key (known: {', '.join(RULE_KEYS)})")

    def fail(key: str, message: str, mapping: Any = spec, sub: str | None = None) -> RuleError:
        return where.error(mapping, sub or key, f"{dotted}.{key}", message)

    multi, patterns = _multi(spec, fail, counter)
    if multi is None:
        on = spec.get("on")
        given = [on] if isinstance(on, str) else on
        if not isinstance(given, list) or not given:
            raise fail("on", "expected a tag glob or a list of them")
        patterns = given
        for pattern in patterns:
            try:
                validate_pattern(pattern)
            except TagError as exc:
                raise fail("on", str(exc)) from None

    def guarded(key: str, build: Any) -> Any:
        if key not in spec:
            return None
        try:
            return build(spec[key])
        except (ValueError, TypeError) as exc:
            raise fail(key, str(exc)) from None

    when = guarded("when", lambda v: compile_condition(v, "when", counter))
    changed = _changed(spec, fail)
    hold = guarded("for", _positive_duration)
    throttle = guarded("throttle", lambda v: _throttle(v))
    threshold = guarded("threshold", lambda v: _threshold(v))
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", "expected true or false")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "expected text")
    actions = spec.get("do")
    if not isinstance(actions, list) or not actions:
        raise fail("do", "expected a non-empty list of actions")
    parsed = []
    for index, action in enumerate(actions):
        try:
            parsed.append(parse_action(action, index, kinds))
        except ValueError as exc:
            line = action.line if isinstance(action, LineDict) else spec.line_of("do")
            raise RuleError(where.path, line, f"{dotted}.do[{index}]", str(exc)) from None
    keys = [limit.key for limit in (throttle, threshold) if limit is not None]
    _check_matched(parsed, multi, where.path, dotted, keys, spec.line)
    return Rule(
        name=name,
        on=tuple(patterns),
        do=tuple(parsed),
        when=when,
        changed=changed,
        hold=hold,
        throttle=throttle,
        threshold=threshold,
        multi=multi,
        description=description,
        enabled=enabled,
        file=where.path,
        line=spec.line,
        spec=dict(spec),
    )


def _check_matched(
    actions: list[ActionSpec],
    multi: Correlation | FleetCondition | None,
    path: str,
    dotted: str,
    keys: list[Template | str],
    line: int,
) -> None:
    """``events.NAME`` in an action or a throttle's or threshold's key names one of the rule's
    patterns (``fleet`` for a fleet rule); a rule over one event has none."""
    if multi is None:
        names: tuple[str, ...] = ()
    elif isinstance(multi, FleetCondition):
        names = ("fleet",)
    else:
        names = tuple(p.name for p in multi.patterns)
    places: list[tuple[str, int, object]] = [
        (f"{dotted}.do[{a.index}]", a.line, (a.params, a.lock, a.title)) for a in actions
    ]
    places.append((f"{dotted}.throttle/threshold key", line, keys))
    for where, at, value in places:
        for found in paths_in(value):
            if found[0] != "events" or found[1] in names:
                continue
            written = "{{ " + ".".join(found) + " }}"
            if not names:
                message = f"{written}: events.NAME is for rules over several events"
            else:
                message = f"{written}: no pattern {found[1]!r} (named: {', '.join(names)})"
            raise RuleError(path, at, where, message)


def _multi(
    spec: LineDict, fail: Any, counter: Counter
) -> tuple[Correlation | FleetCondition | None, list[str]]:
    """A rule over several events (one of MULTI_KINDS), and the tag globs it is a candidate
    for; (None, []) for a rule over one event."""
    named = [k for k in MULTI_KINDS if k in spec]
    if not named:
        return None, []
    if len(named) > 1:
        raise fail(named[1], f"a rule is one of {', '.join(MULTI_KINDS)}, not {named[0]} and {named[1]}")
    kind = named[0]
    for key in _SINGLE:
        if key in spec:
            raise fail(key, f"not with {kind}: each pattern in {kind} says what its events must be")
    try:
        multi = parse_multi(kind, spec[kind], counter, None)
    except (ValueError, TypeError) as exc:
        raise fail(kind, str(exc)) from None
    if isinstance(multi, FleetCondition):
        return multi, [*multi.on, PRESENCE_TAGS]
    return multi, list(multi.globs)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be more than 0s")
    return seconds


def _key_template(value: Any) -> Template | str:
    if not isinstance(value, str):
        raise ValueError("key: expected a template like '{{ source }}'")
    return compile_template(value)


def _throttle(value: Any) -> Throttle:
    if not isinstance(value, dict) or set(value) - {"once_within", "key"} or "once_within" not in value:
        raise ValueError("expected {once_within: DURATION, key: TEMPLATE}")
    return Throttle(_positive_duration(value["once_within"]), _key_template(value.get("key", "")))


def _threshold(value: Any) -> Threshold:
    if (
        not isinstance(value, dict)
        or set(value) - {"count", "within", "key"}
        or not {"count", "within"} <= set(value)
    ):
        raise ValueError("expected {count: N, within: DURATION, key: TEMPLATE}")
    count = value["count"]
    if type(count) is not int or count < 1:
        raise ValueError("count: expected an integer of at least 1")
    return Threshold(count, _positive_duration(value["within"]), _key_template(value.get("key", "")))


def _changed(spec: LineDict, fail: Any) -> Changed | None:
    if "changed" not in spec:
        if "from" in spec or "to" in spec:
            raise fail("from" if "from" in spec else "to", "from/to need changed: PATH")
        return None
    raw = spec["changed"]
    paths = [raw] if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise fail("changed", "expected a path (data.running) or a list of paths")
    try:
        parts = tuple(validate_path(p) for p in paths)
        from_ = compile_value_test(spec["from"], "from") if "from" in spec else None
        to = compile_value_test(spec["to"], "to") if "to" in spec else None
    except ValueError as exc:
        raise fail("changed", str(exc)) from None
    if (from_ or to) and len(paths) != 1:
        raise fail("changed", "from/to need exactly one changed path")
    return Changed(parts, tuple(paths), from_, to)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    counter: Counter = field(default_factory=Counter, compare=False)

    def by_name(self) -> dict[str, Rule]:
        return {r.name: r for r in self.rules}


def rule_files(patterns: Iterable[str], base: Path) -> list[Path]:
    """The files the ``rules`` globs name (relative globs resolve against ``base``)."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for name in sorted(glob.glob(full, recursive=True)):
            path = Path(name)
            if path.is_file() and path not in found:
                found.append(path)
    return found


def load_rule_set(
    paths: Iterable[Path],
    counter: Counter | None = None,
    nodegroups: Mapping[str, str] | None = None,
    *,
    kinds: Mapping[str, KindParser],
) -> RuleSet:
    """Load every file, all or nothing; names must be unique across the set.

    ``nodegroups`` (master.yaml's): the targets written out in run actions and gates are
    compiled against them, so a rule naming a nodegroup that does not exist is refused.
    """
    counter = counter or Counter()
    rules: list[Rule] = []
    files = []
    seen: dict[str, Rule] = {}
    for path in paths:
        try:
            if path.stat().st_size > MAX_RULE_FILE:
                raise RuleError(str(path), 0, "", f"larger than {MAX_RULE_FILE} bytes")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(str(path), 0, "", f"cannot read: {exc}") from exc
        for rule in load_rules_text(text, str(path), counter, kinds=kinds):
            if rule.name in seen:
                other = seen[rule.name]
                raise RuleError(
                    str(path),
                    rule.line,
                    rule.name,
                    f"duplicate rule name (also at {other.file}:{other.line})",
                )
            seen[rule.name] = rule
            rules.append(rule)
        files.append(str(path))
    if nodegroups is not None:
        for index, rule in enumerate(rules):
            _check_targets(rule, nodegroups)
            if isinstance(rule.multi, FleetCondition):
                rules[index] = _fleet_target(rule, nodegroups)
    return RuleSet(tuple(rules), tuple(files), counter)


def _check_targets(rule: Rule, nodegroups: Mapping[str, str]) -> None:
    for spec in rule.do:
        for key, target, target_type in spec.written_targets():
            try:
                compile_target(target, target_type, nodegroups)
            except TargetError as exc:
                raise RuleError(
                    rule.file, spec.line, f"{rule.name}.do[{spec.index}].{key}", str(exc)
                ) from None


def _fleet_target(rule: Rule, nodegroups: Mapping[str, str]) -> Rule:
    """A fleet rule's target compiled against master.yaml's nodegroups (at parse time any
    nodegroup name was taken, and matched nothing)."""
    assert isinstance(rule.multi, FleetCondition)
    target = rule.multi.target
    try:
        compiled = compile_target(target.text, target.target_type, nodegroups)
    except TargetError as exc:
        raise RuleError(rule.file, rule.line, f"{rule.name}.fleet.target", str(exc)) from None
    return replace(rule, multi=replace(rule.multi, target=compiled))
