"""The registry of control operations: the names on the wire, each bound to its area's parts,
and a control package that never reaches up to the master."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace

from reactord.control.registry import handlers

#: The operations the CLI and the bus watcher call, by their names on the socket.
WIRE_NAMES = {
    "ping", "status", "cluster.status",
    "key.list", "key.accept", "key.reject", "key.delete", "key.finger",
    "minions", "state.list", "gate.check",
    "run", "jobs.list", "jobs.show",
    "event.fire", "event.list", "event.show", "event.replay", "bus.probe",
    "rules.list", "rules.reload", "rules.explain",
    "deadletters.list", "deadletters.retry",
    "token.create", "token.list", "token.revoke",
}  # fmt: skip


def test_every_operation_is_registered_by_its_wire_name_and_called_with_the_arguments_only() -> None:
    areas = dict.fromkeys(("keys", "fleet", "jobs", "events", "rules", "dead_letters", "tokens"))
    registered = handlers(SimpleNamespace(status=SimpleNamespace(clock=lambda: 100.0, started=40.0), **areas))
    assert set(registered) == WIRE_NAMES
    assert asyncio.run(registered["ping"]({}))["uptime"] == 60.0


def test_the_operations_load_without_the_master_or_the_metrics() -> None:
    above = ("reactord.master", "reactord.metrics", "reactord.watcher", "prometheus_client")
    code = f"import sys, reactord.control.registry; print(sorted(m for m in {above} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
