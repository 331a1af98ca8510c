"""The short form of state checks (``reactord gate``, the API's gate check, the dashboard's):
``'minion/*/beacon/load' 'data.load1 < 2'`` into the rules' ``on``/``when`` mappings."""

from __future__ import annotations

import datetime
import re
from typing import Any

import yaml

from reactord.protocol.yamlfile import load_with_lines


class CheckSyntax(ValueError):
    """A check that cannot be read; ``usage``: the words are in the wrong order, not malformed."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


_SHORT = re.compile(
    r"\s*([A-Za-z_][\w.-]*)"  # the path
    r"(?:\s*(==|!=|<=|>=|=~|<|>)\s*|\s+(not in|in|contains)\s+|\s+(exists|missing)\s*$)"  # the operator
    r"(.*)",  # the value, YAML
    re.S,
)
_OPS = {
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "lte",
    ">": "gt",
    ">=": "gte",
    "=~": "regex",
    "in": "in",
    "not in": "not_in",
    "contains": "contains",
}


def parse_condition(text: str) -> dict[str, Any]:
    """``data.load1 < 2`` (or a YAML mapping in the rules' form) into a ``when`` mapping."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = load_with_lines(stripped)  # YAML 1.2 booleans: `on` stays a key
        except yaml.YAMLError as exc:
            raise CheckSyntax(f"{text!r}: {exc}") from None
        if not isinstance(value, dict):
            raise CheckSyntax(f"{text!r} is not a mapping")
        return value
    match = _SHORT.fullmatch(stripped)
    if not match:
        raise CheckSyntax(f"{text!r}: expected PATH OP VALUE, e.g. 'data.load1 < 2' or 'data.ok == true'")
    path, symbol, word, presence, raw = match.groups()
    if symbol and raw.lstrip()[:1] in tuple("<>=!~"):
        raise CheckSyntax(
            f"{text!r}: {symbol + raw.lstrip()[:2]!r} is not an operator"
            " (use ==, !=, <, <=, >, >=, =~, in, not in, contains, exists, missing; quote a text value)"
        )
    if presence:
        return {path: {"exists": presence == "exists"}}
    op = symbol or word
    return {path: {_OPS[op]: _value(raw, text)}}


def _value(raw: str, text: str) -> Any:
    """The value of a short condition, read as YAML 1.2 (``on`` and ``yes`` stay text)."""
    if not raw.strip():
        return ""
    try:
        value = load_with_lines(raw)
    except yaml.YAMLError:
        raise CheckSyntax(f"{text!r}: the value is not valid YAML; quote it") from None
    return raw.strip() if isinstance(value, (datetime.date, datetime.datetime)) else value


def parse_checks(words: tuple[str, ...]) -> list[dict[str, Any]]:
    """Tag globs each followed by their conditions: ``'minion/*/beacon/load' 'data.load1 < 2' ...``.

    The conditions of one glob must all hold (several on one path are all kept, never merged).
    """
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    whole: list[dict[str, Any]] = []
    for word in words:
        text = word.strip()
        if (
            text.startswith("data.")
            or text in ("id", "tag", "source", "time")
            or " " in text
            or text.startswith("{")
        ):
            condition = parse_condition(word)
            if set(condition) <= {"on", "when"} and "on" in condition:  # a whole group as a mapping
                whole.append(condition)
                continue
            if not groups:
                raise CheckSyntax(f"{word!r}: give a TAG_GLOB before its conditions", usage=True)
            groups[-1][1].append(condition)
        elif any(c in text for c in "<>=!~"):
            raise CheckSyntax(f"{word!r}: put spaces around the operator ('data.load1 < 2')", usage=True)
        elif text:
            groups.append((text, []))
    checks = [
        {"on": on} if not conds else {"on": on, "when": conds[0] if len(conds) == 1 else {"all": conds}}
        for on, conds in groups
    ] + whole
    if not checks:
        raise CheckSyntax(
            "give a TAG_GLOB and conditions, e.g. 'minion/*/beacon/load' 'data.load1 < 2'", usage=True
        )
    return checks
