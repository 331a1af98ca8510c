"""Shared test support: free ports, waiting on conditions, and real daemons run through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from reactord.master import Master

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports free on 127.0.0.1 right now (the OS picks them)."""
    socks, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in socks:
        sock.close()
    return ports


def wait_until(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    poll_interval = 0.05
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(poll_interval)


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.name} did not stop within {timeout}s:\n{self.output()[-3000:]}"
            ) from None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Setup:
    """A local setup written by ``reactord init`` on free ports, with daemons started via the CLI."""

    root: Path
    ports: list[int]
    daemons: list[Daemon] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, minion_id: str = "web01", **master_overrides: Any) -> Setup:
        event, command, key = free_ports(3)
        result = run_cli(
            "init",
            str(root),
            "--minion-id",
            minion_id,
            "--event-port",
            str(event),
            "--command-port",
            str(command),
            "--key-port",
            str(key),
            "--http-port",
            "0",  # off: a test that wants HTTP sets http.address on a free port
        )
        assert result.returncode == 0, result.stderr
        setup = cls(root, [event, command, key])
        setup.edit_master(
            presence={"heartbeat": "0.2s", "suspect_after": "1s", "down_after": "2s"},
            **master_overrides,
        )
        return setup

    @property
    def master_yaml(self) -> Path:
        return self.root / "master.yaml"

    def edit_master(self, **changes: Any) -> None:
        data = yaml.safe_load(self.master_yaml.read_text())
        data.update(changes)
        self.master_yaml.write_text(yaml.safe_dump(data))

    def minion_yaml(self, minion_id: str, *, pki: str | None = None, **changes: Any) -> Path:
        """A minion config for ``minion_id`` (own pki and state dirs unless ``pki`` is given)."""
        base = yaml.safe_load((self.root / "minion.yaml").read_text())
        base.update(
            id=minion_id,
            pki_dir=f"pki/{pki or minion_id}",
            state_dir=f"state/{pki or minion_id}",
            retry_max="1s",
        )
        base.update(changes)
        path = self.root / f"minion-{pki or minion_id}.yaml"
        path.write_text(yaml.safe_dump(base))
        return path

    def _spawn(self, name: str, args: list[str]) -> Daemon:
        log = self.root / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        handle.close()
        daemon = Daemon(name, proc, log)
        self.daemons.append(daemon)
        return daemon

    def start_master(self, level: str = "debug", timeout: float = 15) -> Daemon:
        daemon = self._spawn("master", ["reactord", "master", "-c", str(self.master_yaml), "-l", level])
        wait_until(
            lambda: self.cli("key", "list").returncode == 0 or not daemon.alive(),
            timeout,
            "the master's control socket",
        )
        assert daemon.alive(), daemon.output()
        return daemon

    def start_minion(self, minion_id: str, *, pki: str | None = None, **changes: Any) -> Daemon:
        path = self.minion_yaml(minion_id, pki=pki, **changes)
        return self._spawn(
            f"minion-{pki or minion_id}", ["reactord", "minion", "-c", str(path), "-l", "debug"]
        )

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "-c", str(self.master_yaml), timeout=timeout)

    def send(
        self, minion_id: str, tag: str, *args: str, pki: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``reactord event send`` on the host of ``minion_id``."""
        path = self.root / f"minion-{pki or minion_id}.yaml"
        return run_cli("event", "send", tag, *args, "-c", str(path), timeout=300)

    def counters(self) -> dict[str, int]:
        return self.cli_json("status")["counters"]  # type: ignore[no-any-return]

    def events(self, *args: str) -> list[dict[str, Any]]:
        return self.cli_json("event", "list", "--limit", "0", *args)  # type: ignore[no-any-return]

    def accept_all(self, *ids: str) -> None:
        """Wait for the keys of ``ids`` to be pending, accept them, and wait until they are up."""
        wait_until(lambda: set(ids) <= set(self.cli_json("key", "list")["pending"]), 20, f"{ids} pending")
        assert self.cli("key", "accept", "--all").returncode == 0
        wait_until(lambda: all(self.presence(i) == "up" for i in ids), 20, f"{ids} up")

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)

    def key_state(self, minion_id: str) -> str | None:
        listing = self.cli_json("key", "list")
        for state, ids in listing.items():
            if minion_id in ids:
                return str(state)
        return None

    def presence(self, minion_id: str) -> str | None:
        for minion in self.cli_json("minions"):
            if minion["id"] == minion_id:
                return str(minion["presence"])
        return None

    def minion_jobs(self, pki: str) -> list[str]:
        """The jids a minion has claimed, read from its own state database."""
        path = self.root / "state" / pki / "minion.db"
        if not path.exists():
            return []
        with sqlite3.connect(path) as conn:
            return [r[0] for r in conn.execute("SELECT jid FROM jobs ORDER BY jid")]

    def close(self) -> list[str]:
        """Stop every daemon still running with SIGTERM; return those that did not stop cleanly."""
        running = [d for d in reversed(self.daemons) if d.alive()]
        for daemon in running:
            daemon.proc.send_signal(signal.SIGTERM)
        unclean = []
        for daemon in running:
            try:
                code = daemon.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = None
            if code != 0:
                unclean.append(f"{daemon.name} (exit {code}):\n{daemon.output()[-2000:]}")
        return unclean


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactord", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def minion_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minion", *args], capture_output=True, text=True, timeout=timeout
    )


class MasterThread:
    """A master running in this process, in its own thread and event loop (real sockets)."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="master", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.master.run())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.master.control.path.exists(), 10, "the master to listen")

    def call(self, coro: Awaitable[T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def run_sync(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)

        return self.call(call())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.master.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive(), "the master did not stop"
        if self.error is not None:
            raise self.error
