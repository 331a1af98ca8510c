"""Reading a control request's arguments: each one typed, each refusal a ``bad_request`` naming it."""

from __future__ import annotations

import math
from typing import Any

from reactord.base.errors import ControlError
from reactord.protocol.errors import TagError
from reactord.protocol.events import INT64_MAX, INT64_MIN
from reactord.protocol.tags import validate_pattern

#: A request's arguments as the control socket decoded them.
Args = dict[str, Any]


def arg(args: Args, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """The argument ``name`` if it is of ``kind``, else a ``bad_request`` error naming it.

    A missing or null argument is ``default``, or an error when there is none. A bool is
    never taken for an int; a float must be finite and an int must fit in 64 bits (what
    msgpack and SQLite hold).
    """
    if name not in args or args[name] is None:
        if default is ...:
            raise ControlError(f"missing argument {name!r}", "bad_request")
        return default
    value = args[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in kinds)
        raise ControlError(f"argument {name!r} must be {names}", "bad_request")
    if isinstance(value, float) and not math.isfinite(value):
        raise ControlError(f"argument {name!r} must be a finite number", "bad_request")
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ControlError(f"argument {name!r} is out of range", "bad_request")
    return value


def tag_glob(args: Args) -> str | None:
    """The optional ``tag`` argument, a tag glob checked as every matcher checks it."""
    tag: str | None = arg(args, "tag", str, None)
    if tag is not None:
        try:
            validate_pattern(tag)
        except TagError as exc:
            raise ControlError(str(exc), "bad_request") from exc
    return tag
