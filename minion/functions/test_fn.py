"""``test.*``: functions to check that a minion answers and behaves."""

from __future__ import annotations

from typing import Any

from minion.functions.context import JobContext
from reactord.protocol import __version__


def ping() -> bool:
    """Return True: the minion is connected, authenticated and running functions."""
    return True


def echo(text: Any) -> Any:
    """Return ``text`` unchanged."""
    return text


def sleep(seconds: float, *, ctx: JobContext) -> bool:
    """Sleep ``seconds`` (stops early when the job times out); return True."""
    if ctx.wait(float(seconds)):
        return False
    return True


def version() -> str:
    """The minion's reactord version."""
    return __version__


def fail(message: str = "test.fail was called") -> None:
    """Raise an error on purpose (to test how failures are reported)."""
    raise RuntimeError(message)
