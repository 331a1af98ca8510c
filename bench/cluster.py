"""Cluster mode on this machine: ingest with 1, 2 and 3 masters sharing one nats-server, and
how long the fleet's partitions take to move when a master is SIGKILLed.

The simulated minions are split over the masters (127.0.0.1, .2, .3, the same ports); a
minion's events count as ingested when its master has acknowledged them, that is once the
engine has stored them. Every master then applies every event; ``applied_s`` is how long
until the last master has applied the last one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Fleet, MasterProcess, free_port, make_keys, master
from bench.scenarios import CACHE, _drive, ids
from reactord.control import ControlClient


@contextmanager
def nats_server(root: Path) -> Iterator[str]:
    """One nats-server with JetStream (the one `make test` installs), on a free port."""
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("no nats-server: make bench installs it (requirements/nats-server.txt)")
    port, store = free_port(), root / "nats"
    store.mkdir(parents=True)
    log = (root / "nats.log").open("ab")
    proc = subprocess.Popen(
        [found, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)], stdout=log, stderr=log
    )
    log.close()
    url = f"nats://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while b"Server is ready" not in (root / "nats.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((root / "nats.log").read_text()[-2000:])
        time.sleep(0.05)  # polling for the server's ready line, with a deadline
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _status(mp: MasterProcess) -> dict[str, Any]:
    return ControlClient(mp.root / "state" / "control.sock", timeout=10).call("cluster.status")  # type: ignore[no-any-return]


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling the masters, with a deadline


@contextmanager
def masters(
    root: Path, count: int, url: str, names: list[str], lease_ttl: str = "10s"
) -> Iterator[list[MasterProcess]]:
    keys = make_keys(names, CACHE)
    ports = (free_port(), free_port())
    with ExitStack() as stack:
        started: list[MasterProcess] = []
        for index in range(count):
            cluster = {"servers": [url], "name": f"m{index}", "partitions": 64, "lease_ttl": lease_ttl}
            started.append(
                stack.enter_context(
                    master(
                        root / f"m{index}",
                        names if index == 0 else [],
                        keys,
                        ports=ports,
                        master_keys_from=started[0].root / "pki" if started else None,
                        interface=f"127.0.0.{index + 1}",
                        cluster=cluster,
                    )
                )
            )
        _wait(
            lambda: all(
                not _status(mp)["unowned"] and len(_status(mp)["members"]) == count for mp in started
            ),
            60,
            "owners",
        )
        yield started


def ingest(root: Path, *, count: int, minions: int = 30, events: int = 60_000) -> dict[str, Any]:
    names = ids(minions)
    keys = make_keys(names, CACHE)
    with nats_server(root) as url, masters(root, count, url, names) as started:
        fleet = Fleet(started[0], names, keys, hosts=[f"127.0.0.{i + 1}" for i in range(count)])
        try:
            fleet.hello()
            cpu = sum(mp.cpu_seconds() for mp in started)
            seconds = _drive(fleet, events // minions)
            sent = sum(s.next_seq - 1 for s in fleet.minions)
            began = time.monotonic()
            _wait(
                lambda: all(_status(mp).get("lag") == 0 for mp in started), 600, "every master to apply all"
            )
            applied = seconds + time.monotonic() - began
            cpu = sum(mp.cpu_seconds() for mp in started) - cpu
            logged = started[-1].query("SELECT COUNT(*) FROM events WHERE tag LIKE 'minion/%'")[0][0]
        finally:
            fleet.close()
    return {
        "scenario": f"(i) cluster ingest, {count} master{'s' if count > 1 else ''}",
        "minions": minions,
        "events": sent,
        "acked_per_s": round(sent / seconds),
        "applied_s": round(applied, 2),
        "logged_on_last": logged,
        "masters_cpu_s": round(cpu, 1),
    }


def failover(root: Path, *, lease_ttl: str = "10s") -> dict[str, Any]:
    """Three masters; SIGKILL the first: seconds until the other two own every partition."""
    names = ids(3)
    with nats_server(root) as url, masters(root, 3, url, names, lease_ttl) as started:
        victim, rest = started[0], started[1:]
        killed = time.monotonic()
        victim.proc.kill()
        victim.proc.wait()

        def taken() -> bool:
            for mp in rest:
                view = _status(mp)
                if sorted(view["members"]) != ["m1", "m2"] or view["unowned"] or view["owners"].get("m0"):
                    return False
            return True

        _wait(taken, 120, "the partitions to move")
        seconds = time.monotonic() - killed
    return {"scenario": f"(j) cluster failover, lease_ttl {lease_ttl}", "seconds": round(seconds, 2)}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(ingest(Path(tmp) / "a", count=int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
