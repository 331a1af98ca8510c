"""The functions a minion can run, in one visible registry.

A function is a plain Python callable with typed arguments, registered under
``<module>.<name>``. One that wants the job's context (deadline, cancellation, the agent's
services) declares a keyword-only ``ctx: JobContext`` parameter. Built-ins are listed here;
third parties add theirs through the ``reactord.functions`` entry point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minion.functions import grains_fn, sys_fn, test_fn

Function = Callable[..., Any]

BUILTINS: dict[str, Function] = {
    "test.ping": test_fn.ping,
    "test.echo": test_fn.echo,
    "test.sleep": test_fn.sleep,
    "test.version": test_fn.version,
    "test.fail": test_fn.fail,
    "grains.items": grains_fn.items,
    "grains.get": grains_fn.get,
    "sys.functions": sys_fn.functions,
    "sys.doc": sys_fn.doc,
}
