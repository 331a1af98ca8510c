"""The functions a minion can run, in one visible registry, behind an allow-list.

A function is a plain Python callable with typed arguments, registered under
``<module>.<name>``. One that wants the job's context (deadline, cancellation, settings,
the agent's services) declares a keyword-only ``ctx: JobContext`` parameter; one that
has an exit code returns ``Outcome(value, retcode)``. Built-ins are listed here; third
parties add theirs through the ``reactord.functions`` entry point group or a module in
``plugins.dirs`` (minion/plugins.py). ``functions.allow`` in minion.yaml decides which run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from minion.functions import cmd_fn, event_fn, file_fn, grains_fn, host_fn, service_fn, sys_fn, test_fn

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
    "cmd.run": cmd_fn.run,
    "service.status": service_fn.status,
    "service.start": service_fn.start,
    "service.stop": service_fn.stop,
    "service.restart": service_fn.restart,
    "service.reload": service_fn.reload,
    "service.enable": service_fn.enable,
    "service.disable": service_fn.disable,
    "file.stat": file_fn.stat_,
    "file.read": file_fn.read,
    "file.write": file_fn.write,
    "file.exists": file_fn.exists,
    "file.hash": file_fn.hash_,
    "pkg.version": host_fn.pkg_version,
    "disk.usage": host_fn.disk_usage,
    "net.ports": host_fn.net_ports,
    "proc.list": host_fn.proc_list,
    "event.fire": event_fn.fire,
    "beacons.list": event_fn.beacons_list,
    "beacons.enable": event_fn.beacons_enable,
    "beacons.disable": event_fn.beacons_disable,
    "beacons.fire_now": event_fn.beacons_fire_now,
    "beacons.test": event_fn.beacons_test,
}

#: What a minion may run when minion.yaml says nothing: looking, never changing.


def allowed(functions: Mapping[str, Function], patterns: Iterable[str]) -> dict[str, Function]:
    """The functions whose names match one of the allow-list globs."""
    patterns = list(patterns)
    return {name: fn for name, fn in functions.items() if any(fnmatch.fnmatchcase(name, p) for p in patterns)}
