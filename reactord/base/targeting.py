"""Targeting: which accepted minions a target expression names (Salt's target types).

- ``glob`` (default): shell-style glob on minion ids (``web*``, ``*``, ``web0[1-3]``)
- ``pcre``: a regular expression on minion ids (``web0[0-9]``; RE2, searched, so anchor it
  with ``^...$`` to match whole ids)
- ``list``: comma-separated ids (``web01,web02``)
- ``grain``: ``key:glob`` where nested keys are separated by ``:`` (``os:Linux``,
  ``roles:web``, ``kernel:6.*``); a list grain matches when any element matches
- ``grain_pcre``: ``key:regex`` on the grain's value (``os:(Debian|Ubuntu)``)
- ``nodegroup``: a name from ``nodegroups:`` in master.yaml
- ``compound``: terms joined by ``and``, ``or``, ``not`` and parentheses, where a term is a
  bare glob or ``G@`` grain, ``P@`` grain regex, ``L@`` list, ``E@`` id regex, ``N@``
  nodegroup: ``G@roles:web and web* and not L@web09``. ``not`` binds tighter than ``and``,
  ``and`` tighter than ``or``.

An expression is compiled once (``compile_target``: a ``TargetError`` names what is wrong)
and then matched against each minion's id and grains. Rules compile their static targets
when they load; a target rendered from an event is compiled when its action runs, with the
event's values escaped so that they are matched literally (``escape_value``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reactord.base.errors import TargetError
from reactord.protocol.patterns import compile_regex

TARGET_TYPES = ("glob", "pcre", "list", "grain", "grain_pcre", "compound", "nodegroup")
#: Compound prefixes and the target type of the text after the ``@``.
PREFIXES = {"G": "grain", "P": "grain_pcre", "L": "list", "E": "pcre", "N": "nodegroup"}
#: Salt prefixes that name data the master does not have.
_UNSUPPORTED = {
    "I": "pillar",
    "J": "pillar regex",
    "S": "subnet",
    "R": "range",
    "X": "execution module",
}
MAX_TARGET = 4096  # characters of one expression
MAX_TERMS = 256  # terms in one compound expression
MAX_NESTING = 32  # parentheses and nodegroups inside each other
_WORD = re.compile(r"\S+")
_TEXT_MAX = 4096  # grain values longer than this never match a regex

Grains = Mapping[str, Any]
Matcher = Callable[[str, Grains], bool]


@dataclass(frozen=True, slots=True)
class Target:
    """A compiled target expression: ``matches(id, grains)`` and ``select(ids, grains_of)``."""

    text: str
    target_type: str
    matches: Matcher

    def select(self, ids: Iterable[str], grains_of: Mapping[str, Grains]) -> list[str]:
        return [m for m in sorted(ids) if self.matches(m, grains_of.get(m, {}))]


def compile_target(
    text: str,
    target_type: str = "glob",
    nodegroups: Mapping[str, str] | None = None,
    *,
    syntax_only: bool = False,
) -> Target:
    """Compile ``text`` as a ``target_type`` expression; ``TargetError`` says what is wrong.

    ``syntax_only``: nodegroups are not known here (a rule file checked on its own, the CLI);
    any name is taken, and matches nothing.
    """
    if target_type not in TARGET_TYPES:
        raise TargetError(f"unknown target type {target_type!r} (use {', '.join(TARGET_TYPES)})")
    if not isinstance(text, str) or not text.strip():
        raise TargetError("an empty target")
    if len(text) > MAX_TARGET:
        raise TargetError(f"a target longer than {MAX_TARGET} characters")
    groups: Mapping[str, str] = _AnyGroup() if syntax_only else dict(nodegroups or {})
    return Target(text, target_type, _compile(text, target_type, groups, ()))


class _AnyGroup(dict[str, str]):
    """Every name is a nodegroup that names no minion: for checking syntax without the config."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "L@-"  # a list of one id that cannot exist: '-' starts no minion id


def resolve(
    target: str,
    target_type: str,
    ids: Iterable[str],
    grains_of: Mapping[str, Grains],
    nodegroups: Mapping[str, str] | None = None,
) -> list[str]:
    """The ids, sorted, that ``target`` names among ``ids``."""
    return compile_target(target, target_type, nodegroups).select(ids, grains_of)


def check_nodegroups(nodegroups: Mapping[str, Any]) -> dict[str, str]:
    """``nodegroups:`` of master.yaml: name -> a compound expression, or a list.

    A list is Salt's compound expression in pieces (``['G@os:Debian', 'or', 'web*']``) when
    it holds an operator or a prefixed term, else a list of ids (``[db01, db02]``).
    Each group is compiled against the others, so an unknown name, a cycle or a bad term is
    found when the config is read, not when a job first uses it.
    """
    groups: dict[str, str] = {}
    for name, value in nodegroups.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise TargetError(f"bad nodegroup name {name!r} (letters, digits, '.', '_', '-')")
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            pieces = [v.strip() for v in value]
            compound = any(p in ("and", "or", "not") or "@" in p or _SHAPE.search(p) for p in pieces)
            groups[name] = " ".join(pieces) if compound else "L@" + ",".join(pieces)
        elif isinstance(value, str) and value.strip():
            groups[name] = value
        else:
            raise TargetError(f"nodegroup {name!r}: expected a compound expression or a list of ids")
    for name in groups:
        try:
            compile_target(name, "nodegroup", groups)
        except TargetError as exc:
            raise TargetError(f"nodegroup {name!r}: {exc}") from None
    return groups


# -- values from events --------------------------------------------------------------------

_GLOB_SPECIAL = re.compile(r"([*?\[\]])")
_SHAPE = re.compile(r"[\s(),]")


def escape_value(value: str, target_type: str) -> str:
    """A value rendered from an event into a target, made to match only itself.

    Glob characters are bracketed (``*`` becomes ``[*]``), regex characters escaped; a value
    that would change the expression's shape (spaces, parentheses, commas) is refused, so an
    event can never widen a target (``web01 or *``).
    """
    if _SHAPE.search(value):
        raise TargetError(f"a value from the event would change the target's shape: {value[:80]!r}")
    if target_type in ("pcre", "grain_pcre"):
        return re.escape(value)
    return _GLOB_SPECIAL.sub(r"[\1]", value)


# -- compiling -----------------------------------------------------------------------------


def _compile(text: str, target_type: str, groups: Mapping[str, str], seen: tuple[str, ...]) -> Matcher:
    if target_type == "glob":
        return _glob(text.strip())
    if target_type == "pcre":
        regex = _regex(text.strip())
        return lambda mid, grains: regex.search(mid)
    if target_type == "list":
        wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
        if not wanted:
            raise TargetError("an empty list target")
        return lambda mid, grains: mid in wanted
    if target_type in ("grain", "grain_pcre"):
        path, pattern = _split_grain(text.strip())
        keys = path.split(":")
        if target_type == "grain":
            glob = _glob_text(pattern)
            return lambda mid, grains: _grain_values_match(grains, keys, glob)
        regex = _regex(pattern)
        return lambda mid, grains: _grain_values_match(grains, keys, regex.search)
    if target_type == "nodegroup":
        name = text.strip()
        if name in seen:
            raise TargetError(f"nodegroups refer to each other in a cycle: {' -> '.join((*seen, name))}")
        if len(seen) >= MAX_NESTING:
            raise TargetError(f"nodegroups nested more than {MAX_NESTING} deep")
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none defined"
            raise TargetError(f"no nodegroup {name!r} in master.yaml (nodegroups: {known})")
        return _compile(groups[name], "compound", groups, (*seen, name))
    return _Compound(text, groups, seen).parse()


def _split_grain(text: str) -> tuple[str, str]:
    """``roles:web`` into (``roles``, ``web``); nested keys: ``ec2:tags:env:prod``. The value
    is what follows the last ``:`` (a value with ``:`` in it: match it with ``?``)."""
    path, sep, pattern = text.rpartition(":")
    if not sep or not path or any(not k for k in path.split(":")):
        raise TargetError(f"a grain target is key:value (nested keys key:sub:value), got {text!r}")
    return path, pattern


def _glob_text(pattern: str) -> Callable[[str], bool]:
    translated = _translate(pattern)
    return lambda value: translated(value) is not None


#: Globs longer than this are compiled each time, not cached: a target rendered from an event
#: may be up to MAX_TARGET characters, and the cache is bounded by bytes as well as by count.
_CACHED_GLOB = 256


def _translate(pattern: str) -> Callable[[str], Any]:
    if len(pattern) > _CACHED_GLOB:
        return re.compile(fnmatch.translate(pattern)).match
    return _translate_cached(pattern)


@lru_cache(maxsize=1024)  # at most 1,024 globs of at most 256 characters
def _translate_cached(pattern: str) -> Callable[[str], Any]:
    return re.compile(fnmatch.translate(pattern)).match


def _glob(pattern: str) -> Matcher:
    if not pattern or _SHAPE.search(pattern):
        raise TargetError(f"a glob target is one word, got {pattern!r} (for and/or/not use -C)")
    match = _translate(pattern)
    return lambda mid, grains: match(mid) is not None


def _regex(pattern: str) -> Any:
    try:
        regex = compile_regex(pattern, max_text=_TEXT_MAX)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    return regex


def _grain_values_match(grains: Grains, keys: list[str], match: Callable[[str], bool]) -> bool:
    value: Any = grains
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    values = value if isinstance(value, list) else [value]
    return any(match(_text(v)) for v in values if not isinstance(v, (dict, list)))


def grain_matches(grains: Grains, keys: list[str], pattern: str) -> bool:
    """Whether the grain at ``keys`` (or any element of a list grain) matches the glob."""
    return _grain_values_match(grains, keys, _glob_text(pattern))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Compound:
    """A recursive-descent parser: ``or`` of ``and`` of (``not``) terms or parentheses."""

    def __init__(self, text: str, groups: Mapping[str, str], seen: tuple[str, ...]) -> None:
        self.text = text
        self.groups = groups
        self.seen = seen
        self.tokens = _tokens(text)
        self.pos = 0
        self.terms = 0
        self.depth = 0

    def parse(self) -> Matcher:
        if not self.tokens:
            raise TargetError("an empty compound target")
        matcher = self._or()
        if self.pos < len(self.tokens):
            raise TargetError(f"unexpected {self.tokens[self.pos]!r} in compound target {self.text!r}")
        return matcher

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self) -> Matcher:
        parts = [self._and()]
        while self._peek() == "or":
            self.pos += 1
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda mid, grains: any(p(mid, grains) for p in parts)

    def _and(self) -> Matcher:
        parts = [self._not()]
        while self._peek() == "and":
            self.pos += 1
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda mid, grains: all(p(mid, grains) for p in parts)

    def _not(self) -> Matcher:
        if self._peek() == "not":
            self.pos += 1
            inner = self._not()
            return lambda mid, grains: not inner(mid, grains)
        return self._atom()

    def _atom(self) -> Matcher:
        token = self._peek()
        if token is None:
            raise TargetError(f"compound target {self.text!r} ends where a term is expected")
        self.pos += 1
        if token == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise TargetError(f"parentheses nested more than {MAX_NESTING} deep")
            inner = self._or()
            if self._peek() != ")":
                raise TargetError(f"a '(' without its ')' in compound target {self.text!r}")
            self.pos += 1
            self.depth -= 1
            return inner
        if token in (")", "and", "or", "not"):
            raise TargetError(f"unexpected {token!r} where a term is expected in {self.text!r}")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise TargetError(f"more than {MAX_TERMS} terms in one compound target")
        return self._term(token)

    def _term(self, token: str) -> Matcher:
        prefix, at, rest = token.partition("@")
        if at and len(prefix) == 1 and prefix.isalpha():
            if prefix in _UNSUPPORTED:
                raise TargetError(f"{prefix}@ ({_UNSUPPORTED[prefix]}) targets are not supported")
            if prefix not in PREFIXES:
                known = ", ".join(f"{p}@" for p in PREFIXES)
                raise TargetError(f"unknown target prefix {prefix}@ in {token!r} (known: {known})")
            if not rest:
                raise TargetError(f"nothing after {prefix}@ in compound target {self.text!r}")
            return _compile(rest, PREFIXES[prefix], self.groups, self.seen)
        return _glob(token)


def _tokens(text: str) -> list[str]:
    """Words, with parentheses at a word's start and unbalanced ones at its end split off:
    ``(G@os:Linux or web*)`` reads as ``(``, ``G@os:Linux``, ``or``, ``web*``, ``)``, while
    a regex term keeps its own groups (``E@web(01|02)``)."""
    out: list[str] = []
    for word in _WORD.findall(text):
        while word.startswith("(") and word.count("(") > word.count(")"):
            out.append("(")
            word = word[1:]
        tail = 0
        while word.endswith(")") and word.count(")") > word.count("("):
            tail += 1
            word = word[:-1]
        if word:
            out.append(word)
        out.extend(")" * tail)
    return out
