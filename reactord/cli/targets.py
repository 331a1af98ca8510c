"""The target options every command that names minions shares (Salt's flags).

``run`` takes its target as an argument and a flag for its type (``-C 'G@roles:web and
web*'``); ``state`` and ``gate`` take the target as the value of the option that names its
type (``--target 'web*'``, ``-C 'G@roles:web and not web09'``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from reactord.base.errors import TargetError
from reactord.base.targeting import compile_target

F = TypeVar("F", bound=Callable[..., Any])

#: (short, long, target type, what the target is), in the order --help shows them.
TYPES = (
    ("-E", "--pcre", "pcre", "a regular expression on minion ids (RE2)"),
    ("-L", "--list", "list", "a comma-separated list of ids"),
    ("-G", "--grain", "grain", "a grain match, KEY:GLOB (nested keys KEY:SUB:GLOB)"),
    ("-P", "--grain-pcre", "grain_pcre", "a grain match, KEY:REGEX"),
    ("-C", "--compound", "compound", "a compound target: G@, P@, L@, E@, N@ terms and globs with and/or/not"),
    ("-N", "--nodegroup", "nodegroup", "a nodegroup of master.yaml"),
)


def target_type_flags(func: F) -> F:
    """``-E -L -G -P -C -N``: flags saying what kind of target the TARGET argument is."""
    for short, long, kind, what in reversed(TYPES):
        func = click.option(short, long, f"tt_{kind}", is_flag=True, help=f"TARGET is {what}")(func)
    return func


def flagged_type(flags: dict[str, Any]) -> str:
    """The target type the flags of ``target_type_flags`` chose (``glob`` if none)."""
    chosen = [kind for _, _, kind, _ in TYPES if flags.pop(f"tt_{kind}", False)]
    if len(chosen) > 1:
        raise click.UsageError(f"give one target type, not {' and '.join(_flag(k) for k in chosen)}")
    return chosen[0] if chosen else "glob"


def target_value_options(func: F) -> F:
    """``--target GLOB`` or one of ``-E -L -G -P -C -N`` with the target as its value."""
    for short, long, kind, what in reversed(TYPES):
        metavar = "KEY:VALUE" if kind.startswith("grain") else kind.upper()
        func = click.option(short, long, f"tv_{kind}", metavar=metavar, help=f"minions named by {what}")(func)
    return click.option(
        "--target", "tv_glob", metavar="GLOB", help="minions whose id matches (default: all)"
    )(func)


def valued_target(values: dict[str, Any]) -> dict[str, Any]:
    """The ``target``/``target_type`` arguments the options of ``target_value_options`` give."""
    kinds = ["glob", *(kind for _, _, kind, _ in TYPES)]
    given = {kind: values.pop(f"tv_{kind}") for kind in kinds if values.get(f"tv_{kind}") is not None}
    for kind in kinds:
        values.pop(f"tv_{kind}", None)
    if len(given) > 1:
        raise click.UsageError(f"give one target, not {' and '.join(_flag(k) for k in given)}")
    if not given:
        return {}
    ((kind, target),) = given.items()
    check(target, kind)
    return {"target": target, "target_type": kind}


def check(target: str, target_type: str) -> None:
    """A usage error (exit 2) for an expression that cannot be valid, before asking the master
    (nodegroups are the master's: their names are checked there)."""
    try:
        compile_target(target, target_type, syntax_only=True)
    except TargetError as exc:
        raise click.UsageError(f"bad {target_type} target {target!r}: {exc}") from None


def _flag(kind: str) -> str:
    return "--target" if kind == "glob" else next(short for short, _, k, _ in TYPES if k == kind)
