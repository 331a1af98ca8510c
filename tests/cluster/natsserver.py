"""Real nats-server processes for the cluster tests: one node or three clustered, on free
127.0.0.1 ports with their stores in temp folders, ready when their monitoring port says so."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_ports, wait_until

#: Cluster mode needs JetStream >= 2.11 (DESIGN.md §9); Debian's nats-server is 2.9.
MIN_VERSION = (2, 11)
CLUSTER_NAME = "rdtest"


def find_binary() -> tuple[Path | None, str]:
    """The nats-server to test with and its version, or None and why there is none.

    The one `make test` installs (requirements/nats-server.txt) sits beside this interpreter;
    one on PATH is used otherwise, if it is recent enough."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        return None, "no nats-server binary (make test installs it: requirements/nats-server.txt)"
    out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        return None, f"{found} --version printed no version: {out!r}"
    version = (int(match[1]), int(match[2]))
    if version < MIN_VERSION:
        return None, f"{found} is {match[0]}, cluster mode needs >= v2.11"
    return Path(found), match[0]


def find_old_binary() -> tuple[Path | None, str]:
    """Debian's nats-server (2.9), which `make test` unpacks beside the venv: the engine a
    master must refuse. None and why when it is not there or not older than 2.11."""
    found = Path(sys.executable).parent.parent / "old-nats" / "usr" / "sbin" / "nats-server"
    if not found.exists():
        return None, f"no Debian nats-server at {found} (make test unpacks it)"
    out = subprocess.run([str(found), "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if match is None or (int(match[1]), int(match[2])) >= MIN_VERSION:
        return None, f"{found} is not older than 2.11: {out!r}"
    return found, match[0]


def _conf_value(value: Any) -> str:
    """A value in nats-server's config syntax (JSON is a subset of it)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {_conf_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@dataclass
class NatsServer:
    """One nats-server process; ``start`` writes its config and waits until it is healthy."""

    binary: Path
    name: str
    root: Path
    port: int
    http_port: int
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    jetstream: bool = True
    token: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "server_name": self.name,
            "listen": f"127.0.0.1:{self.port}",
            "http": f"127.0.0.1:{self.http_port}",
        }
        if self.jetstream:
            conf["jetstream"] = {"store_dir": str(self.root / f"{self.name}-store")}
        if self.token is not None:
            conf["authorization"] = {"token": self.token}
        if self.cluster_port is not None:
            conf["cluster"] = {
                "name": CLUSTER_NAME,
                "listen": f"127.0.0.1:{self.cluster_port}",
                "routes": [f"nats-route://127.0.0.1:{p}" for p in self.routes],
            }
        return conf

    def spawn(self) -> None:
        """Start the process without waiting for it (a cluster's nodes wait for each other)."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is already running"
        conf = self.root / f"{self.name}.conf"
        conf.write_text("\n".join(f"{k}: {_conf_value(v)}" for k, v in self.config().items()) + "\n")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """The monitoring port answers ``/healthz`` with 200: listening, and with JetStream on,
        in contact with a meta leader (in a cluster: the cluster has formed)."""
        assert self.alive(), f"{self.name} exited:\n{self.output()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def routed(self, servers: list[NatsServer]) -> bool:
        """Routes are up to every other node of ``servers`` that is running."""
        peers = {route["remote_name"] for route in self.monitor("routez")["routes"]}
        return peers >= {s.name for s in servers if s is not self and s.alive()}

    def meta_ready(self, servers: list[NatsServer]) -> bool:
        """This node leads JetStream's meta group with every other running node of ``servers``
        a current member, or follows a leader that is one of them: until then a replicated
        stream may be refused with "no suitable peers for placement" though /healthz is 200."""
        meta = self.monitor("jsz").get("meta_cluster") or {}
        leader = meta.get("leader")
        if not leader:
            return False
        if leader != self.name:
            return any(s.name == leader for s in servers if s.alive())
        current = {r["name"] for r in meta.get("replicas") or [] if r.get("current") and not r.get("offline")}
        return current >= {s.name for s in servers if s is not self and s.alive()}

    def monitor(self, endpoint: str) -> dict[str, Any]:
        """A JSON monitoring endpoint (``varz``, ``jsz``, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{endpoint}", timeout=5) as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def start(self, timeout: float = 15) -> None:
        self.spawn()
        wait_until(self.healthy, timeout, f"nats-server {self.name} healthy on :{self.http_port}")

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not go); the exit code, None if not running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.output()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def single(binary: Path, root: Path, **options: Any) -> NatsServer:
    port, http = free_ports(2)
    return NatsServer(binary, "n1", root, port, http, **options)


def cluster(binary: Path, root: Path, size: int = 3) -> list[NatsServer]:
    """``size`` nodes routed to each other (every node lists every route, its own included,
    which nats-server ignores), not started."""
    ports = free_ports(3 * size)
    routes = ports[2 * size :]
    return [
        NatsServer(binary, f"n{i + 1}", root, ports[i], ports[size + i], routes[i], routes)
        for i in range(size)
    ]


def start_all(servers: list[NatsServer], timeout: float = 30) -> None:
    """Start the nodes and wait until each is healthy, routed to all the others, and the meta
    group's leader counts all of them current (see ``meta_ready``)."""
    for server in servers:
        server.spawn()
    wait_until(
        lambda: all(s.healthy() and s.routed(servers) and s.meta_ready(servers) for s in servers),
        timeout,
        "the nats cluster",
    )


def stop_all(servers: list[NatsServer]) -> list[str]:
    """Stop every node; the ones that did not stop cleanly, with their output."""
    unclean = []
    for server in reversed(servers):
        try:
            code = server.stop()
        except AssertionError as exc:
            unclean.append(str(exc))
            continue
        if code not in (None, 0, -signal.SIGKILL):
            unclean.append(f"{server.name} exited {code}:\n{server.output()}")
    return unclean
