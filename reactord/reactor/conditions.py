"""Conditions: the ``when`` language, compiled once into small predicate objects.

A mapping means "all of these hold". Its keys are paths (``data.name``, ``source``) or the
logical operators ``all``, ``any`` and ``not``. A path's value is a scalar (equality), a list
(any of these values) or a mapping of operators, which must all hold:

    eq ne gt gte lt lte in not_in contains prefix suffix glob regex exists cidr ignore_case

Checking returns ``None`` when the condition holds, or the reason it does not (the path,
what was expected and the actual value), so every decision can be explained.

Event data comes from the network, so no operator may take more than linear time in it:
``regex`` runs on RE2 (no backtracking; a pattern that needs it, such as a backreference or a
lookaround, is refused at load) and sees at most ``MAX_MATCH_TEXT`` characters; ``glob`` is
``fnmatch``, whose translation (Python 3.11) puts every ``*`` but the last in an atomic group,
so it does not backtrack either.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.protocol.events import Event
from reactord.protocol.patterns import Regex
from reactord.protocol.patterns import compile_regex as _compile_regex
from reactord.reactor.paths import MISSING, resolve, validate_path

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "prefix",
    "suffix",
    "glob",
    "regex",
    "exists",
    "cidr",
    "ignore_case",
)
MAX_MATCH_TEXT = 4096  # longer text is not fed to a rule's regex (bounded work on event data)


class Counter:
    """Counts leaf condition checks (the reactor's cost, observable in tests and metrics)."""

    __slots__ = ("checks",)

    def __init__(self) -> None:
        self.checks = 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return expected in actual
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    if isinstance(actual, dict):
        return expected in actual
    return False


def _compare(op: str) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        if (_number(actual) and _number(expected)) or (isinstance(actual, str) and isinstance(expected, str)):
            if op == "gt":
                return bool(actual > expected)
            if op == "gte":
                return bool(actual >= expected)
            if op == "lt":
                return bool(actual < expected)
            return bool(actual <= expected)
        return False

    return check


def _cidr(actual: Any, network: Any) -> bool:
    try:
        return isinstance(actual, str) and ipaddress.ip_address(actual) in network
    except ValueError:
        return False


def compile_regex(pattern: str, ignore_case: bool = False) -> Regex:
    """A rule's ``regex`` operand: RE2, over at most ``MAX_MATCH_TEXT`` characters."""
    return _compile_regex(pattern, ignore_case, max_text=MAX_MATCH_TEXT)


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _same,
    "ne": lambda a, e: not _same(a, e),
    "gt": _compare("gt"),
    "gte": _compare("gte"),
    "lt": _compare("lt"),
    "lte": _compare("lte"),
    "in": lambda a, e: any(_same(a, x) for x in e),
    "not_in": lambda a, e: not any(_same(a, x) for x in e),
    "contains": _contains,
    "prefix": lambda a, e: isinstance(a, str) and a.startswith(e),
    "suffix": lambda a, e: isinstance(a, str) and a.endswith(e),
    "glob": lambda a, e: isinstance(a, str) and fnmatch.fnmatchcase(a, e),
    "regex": lambda a, e: isinstance(a, str) and e.search(a),
    "cidr": _cidr,
}


@dataclass(frozen=True, slots=True)
class ValueTest:
    """Operators applied to one value: ``{gt: 80}``, ``[a, b]`` (any of), or a scalar."""

    tests: tuple[tuple[str, Any, Any], ...]  # (operator, compiled expected, as written)
    ignore_case: bool = False

    def ok(self, actual: Any) -> bool:
        """The fast path: whether the value passes, without explaining why not."""
        for op, expected, _written in self.tests:
            if op == "exists":
                if (actual is not MISSING) != expected:
                    return False
                continue
            if actual is MISSING:
                return False
            if self.ignore_case:
                value, want = _fold(actual), (expected if op == "regex" else _fold(expected))
                if not _TESTS[op](value, want):
                    return False
            elif not _TESTS[op](actual, expected):
                return False
        return True

    def failure(self, actual: Any) -> str | None:
        for op, expected, written in self.tests:
            if op == "exists":
                if (actual is not MISSING) != expected:
                    return f"expected exists {show_value(written)}, got {show_value(actual)}"
                continue
            if actual is MISSING:
                return f"expected {op} {show_value(written)}, but it is missing"
            value, want = (_fold(actual), _fold(expected)) if self.ignore_case else (actual, expected)
            if op == "regex" and self.ignore_case:
                want = expected
            if not _TESTS[op](value, want):
                return f"expected {op} {show_value(written)}, got {show_value(actual)}"
        return None


def show_value(value: Any, *, missing: str = "nothing (missing)", width: int = 120) -> str:
    """A value as every explanation writes it: JSON (``"nginx"``, ``true``, ``null``, ``[1, 2]``),
    ASCII only (event data is shown on a terminal), cut at ``width`` characters."""
    if value is MISSING:
        return missing
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def compile_value_test(spec: Any, where: str) -> ValueTest:
    """Compile the right-hand side of ``path: spec``; ``ValueError`` names what is wrong."""
    if isinstance(spec, list):
        return ValueTest((("in", spec, spec),))
    if not isinstance(spec, dict):
        return ValueTest((("eq", spec, spec),))
    ignore_case = spec.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise ValueError(f"{where}.ignore_case: expected true or false")
    tests = []
    for op, expected in spec.items():
        if op == "ignore_case":
            continue
        if op not in OPERATORS:
            raise ValueError(f"{where}: unknown operator {op!r} (known: {', '.join(OPERATORS)})")
        tests.append((op, _compile_expected(op, expected, f"{where}.{op}", ignore_case), expected))
    if not tests:
        raise ValueError(f"{where}: no operator given")
    return ValueTest(tuple(tests), ignore_case)


def _compile_expected(op: str, expected: Any, where: str, ignore_case: bool) -> Any:
    if op in ("in", "not_in") and not isinstance(expected, list):
        raise ValueError(f"{where}: expected a list")
    if op in ("gt", "gte", "lt", "lte") and not (_number(expected) or isinstance(expected, str)):
        raise ValueError(f"{where}: expected a number (or text, compared as text)")
    if op in ("prefix", "suffix", "glob") and not isinstance(expected, str):
        raise ValueError(f"{where}: expected a string")
    if op == "exists" and not isinstance(expected, bool):
        raise ValueError(f"{where}: expected true or false")
    if op == "regex":
        if not isinstance(expected, str):
            raise ValueError(f"{where}: expected a regular expression")
        try:
            return compile_regex(expected, ignore_case)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    if op == "cidr":
        try:
            return ipaddress.ip_network(str(expected), strict=False)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return expected


class Condition:
    """A compiled condition: ``holds`` is the fast path; ``failure`` says why it does not hold."""

    def holds(self, event: Event) -> bool:
        raise NotImplementedError

    def failure(self, event: Event) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PathCondition(Condition):
    path: str
    parts: tuple[str, ...]
    test: ValueTest
    counter: Counter

    def holds(self, event: Event) -> bool:
        self.counter.checks += 1
        return self.test.ok(resolve(event, self.parts))

    def failure(self, event: Event) -> str | None:
        self.counter.checks += 1
        reason = self.test.failure(resolve(event, self.parts))
        return f"{self.path}: {reason}" if reason else None


@dataclass(frozen=True, slots=True)
class AllOf(Condition):
    parts: tuple[Condition, ...]

    def holds(self, event: Event) -> bool:
        return all(part.holds(event) for part in self.parts)

    def failure(self, event: Event) -> str | None:
        for part in self.parts:
            reason = part.failure(event)
            if reason:
                return reason
        return None


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    parts: tuple[Condition, ...]

    def holds(self, event: Event) -> bool:
        return any(part.holds(event) for part in self.parts)

    def failure(self, event: Event) -> str | None:
        reasons = []
        for part in self.parts:
            reason = part.failure(event)
            if reason is None:
                return None
            reasons.append(reason)
        return "none of any: " + "; ".join(reasons)


@dataclass(frozen=True, slots=True)
class Not(Condition):
    part: Condition
    written: str

    def holds(self, event: Event) -> bool:
        return not self.part.holds(event)

    def failure(self, event: Event) -> str | None:
        if self.part.failure(event) is None:
            return f"not: {self.written} holds"
        return None


def compile_condition(spec: Any, where: str, counter: Counter) -> Condition:
    """Compile a ``when`` mapping (or a list under ``all``/``any``) into a ``Condition``."""
    if isinstance(spec, list):
        return AllOf(tuple(compile_condition(s, f"{where}[{i}]", counter) for i, s in enumerate(spec)))
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{where}: expected a mapping of conditions")
    parts: list[Condition] = []
    for key, value in spec.items():
        here = f"{where}.{key}"
        if key == "all":
            parts.append(compile_condition(_as_list(value, here), here, counter))
        elif key == "any":
            items = _as_list(value, here)
            parts.append(
                AnyOf(tuple(compile_condition(s, f"{here}[{i}]", counter) for i, s in enumerate(items)))
            )
        elif key == "not":
            parts.append(Not(compile_condition(value, here, counter), show_value(value, width=80)))
        else:
            try:
                validate_path(str(key))
            except ValueError as exc:
                raise ValueError(f"{here}: {exc}") from None
            parts.append(
                PathCondition(str(key), tuple(str(key).split(".")), compile_value_test(value, here), counter)
            )
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of conditions")
    return value
