"""The action kinds a rule can use: one module each, one line each in ``KINDS``.

Each module documents its keys in its docstring. The rule loader and the dispatcher are
given this registry by their callers (the reactor service, ``rules check``, ``rules test``).
"""

from __future__ import annotations

from reactord.actions.kind import Registry, registry
from reactord.actions.kinds import exec, fire, log, run, webhook

KINDS: Registry = registry(
    run.KIND,
    fire.KIND,
    webhook.KIND,
    exec.KIND,
    log.KIND,
)
