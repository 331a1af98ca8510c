"""``service.*``: look at and control services, through systemctl (argv, never a shell).

Where systemd does not run the host, ``status`` falls back to the process table and the
others to the SysV ``service`` program when it exists.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from minion.beacons.processes import matching, process_table, systemd_available, unit_state
from minion.errors import FunctionError
from minion.functions import cmd_fn
from minion.functions.context import JobContext, Outcome

_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9@_.:-]{0,200}")


def _unit(name: str) -> str:
    if not isinstance(name, str) or not _UNIT.fullmatch(name):
        raise FunctionError(f"bad service name {name!r}")
    return name


def status(name: str, *, ctx: JobContext) -> dict[str, Any]:
    """Whether a service runs: ``{name, running, state, sub_state, enabled, method}``."""
    name = _unit(name)
    if systemd_available():
        unit = unit_state(name, timeout=min(10.0, ctx.remaining() or 10.0))
        return {"name": name, "running": unit["state"] == "active", **unit, "method": "systemd"}
    pids = matching(process_table(), name)
    return {
        "name": name,
        "running": bool(pids),
        "state": "active" if pids else "inactive",
        "pids": pids[:20],
        "method": "process",
    }


def _control(action: str, name: str, ctx: JobContext) -> Outcome:
    name = _unit(name)
    if systemd_available():
        return cmd_fn.run(["systemctl", action, name], ctx=ctx)
    if action in ("start", "stop", "restart", "reload") and shutil.which("service"):
        return cmd_fn.run(["service", name, action], ctx=ctx)
    if action in ("enable", "disable"):
        raise FunctionError(f"cannot {action} {name}: that needs systemd, which does not run this host")
    raise FunctionError(f"cannot {action} {name}: systemd does not run this host and there is no `service`")


def start(name: str, *, ctx: JobContext) -> Outcome:
    """Start a service."""
    return _control("start", name, ctx)


def stop(name: str, *, ctx: JobContext) -> Outcome:
    """Stop a service."""
    return _control("stop", name, ctx)


def restart(name: str, *, ctx: JobContext) -> Outcome:
    """Restart a service."""
    return _control("restart", name, ctx)


def reload(name: str, *, ctx: JobContext) -> Outcome:
    """Reload a service's configuration."""
    return _control("reload", name, ctx)


def enable(name: str, *, ctx: JobContext) -> Outcome:
    """Enable a service at boot (systemd only)."""
    return _control("enable", name, ctx)


def disable(name: str, *, ctx: JobContext) -> Outcome:
    """Disable a service at boot (systemd only)."""
    return _control("disable", name, ctx)
