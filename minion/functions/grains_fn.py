"""``grains.*``: read the facts this minion reports about its host."""

from __future__ import annotations

from typing import Any

from minion.functions.context import JobContext


def items(*, ctx: JobContext) -> dict[str, Any]:
    """All grains."""
    return dict(ctx.grains)


def get(key: str, default: Any = None, *, ctx: JobContext) -> Any:
    """One grain; nested keys are separated by ``:`` (``grains.get os``)."""
    value: Any = ctx.grains
    for part in key.split(":"):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value
