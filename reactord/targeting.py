"""Targeting: which accepted minions a target expression names.

- ``glob`` (default): shell-style glob on minion ids (``web*``, ``*``)
- ``list``: comma-separated ids (``web01,web02``)
- ``grain``: ``key:value`` where ``value`` is a glob and nested keys are separated by ``:``
  (``os:Linux``, ``roles:web``; a list grain matches when any element matches)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from reactord.errors import TargetError

TARGET_TYPES = ("glob", "list", "grain")


def resolve(
    target: str,
    target_type: str,
    ids: Iterable[str],
    grains_of: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    ids = sorted(ids)
    if target_type == "glob":
        return [m for m in ids if fnmatch.fnmatchcase(m, target)]
    if target_type == "list":
        wanted = {part.strip() for part in target.split(",") if part.strip()}
        if not wanted:
            raise TargetError("an empty list target")
        return [m for m in ids if m in wanted]
    if target_type == "grain":
        path, sep, pattern = target.rpartition(":")
        if not sep or not path:
            raise TargetError(f"a grain target is key:value, got {target!r}")
        keys = path.split(":")
        return [m for m in ids if grain_matches(grains_of.get(m, {}), keys, pattern)]
    raise TargetError(f"unknown target type {target_type!r} (use {', '.join(TARGET_TYPES)})")


def grain_matches(grains: Mapping[str, Any], keys: list[str], pattern: str) -> bool:
    value: Any = grains
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    values = value if isinstance(value, list) else [value]
    return any(fnmatch.fnmatchcase(_text(v), pattern) for v in values if not isinstance(v, (dict, list)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
