"""``sys.*``: what this minion can do."""

from __future__ import annotations

import inspect

from minion.functions.context import JobContext


def functions(*, ctx: JobContext) -> list[str]:
    """The names of the functions this minion is allowed to run."""
    return sorted(ctx.functions)


def doc(name: str = "", *, ctx: JobContext) -> dict[str, str]:
    """The docstrings of the allowed functions (all, or those starting with ``name``)."""
    return {
        fname: inspect.getdoc(fn) or ""
        for fname, fn in sorted(ctx.functions.items())
        if fname.startswith(name)
    }
