"""The bench harness: a real master in a subprocess, and simulated minions with real keys.

Each simulated minion has its own CURVE key pair, accepted by the master (written to its
key store before it starts), a DEALER on the command channel (hello, acks, commands and
returns, like the real agent) and a PUB on the event socket that sends batches with the
same at-least-once window as the real minion: it never has more than ``window`` events
unacknowledged, and re-sends from the last ack when acks stop.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import zmq

from reactord.keystore import KeyStore
from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys, load_public_pem, load_signing_public_pem, verify_signature

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit(wanted: int = 65536) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@dataclass
class MasterProcess:
    root: Path
    proc: subprocess.Popen[bytes]
    ports: tuple[int, int]
    master_key: bytes
    signing_key: bytes

    @property
    def db(self) -> Path:
        return self.root / "state" / "master.db"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return conn.execute(sql, args).fetchall()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def master(
    root: Path,
    ids: list[str],
    keys: dict[str, CurveKeys],
    rules: str | None = None,
    *,
    ports: tuple[int, int] | None = None,
    master_keys_from: Path | None = None,
    **config: Any,
) -> Iterator[MasterProcess]:
    """A master on free ports (or ``ports``) with ``ids`` pre-accepted and ``rules`` loaded;
    with ``master_keys_from``, presenting that master's key pair (a cluster's masters)."""
    root.mkdir(parents=True, exist_ok=True)
    event_port, command_port = ports or (free_port(), free_port())
    if master_keys_from is not None:
        (root / "pki").mkdir(mode=0o700, exist_ok=True)
        for key in master_keys_from.glob("master*"):
            (root / "pki" / key.name).write_bytes(key.read_bytes())
            (root / "pki" / key.name).chmod(key.stat().st_mode & 0o777)
    (root / "reactor.d").mkdir(exist_ok=True)
    if rules:
        (root / "reactor.d" / "bench.yaml").write_text(rules)
    settings = {
        "interface": "127.0.0.1",
        "event_port": event_port,
        "command_port": command_port,
        "key_port": 0,
        "pki_dir": "pki",
        "state_dir": "state",
        "rules": ["reactor.d/*.yaml"],
        "log_level": "warning",
        "presence": {"heartbeat": "5s", "suspect_after": "60s", "down_after": "120s"},
        "reactor": {"watch_rules": False},
        **config,
    }
    (root / "master.yaml").write_text(yaml.safe_dump(settings))
    store = KeyStore(root / "pki")
    for minion_id in ids:
        if store.accepted_key(minion_id) is None:
            store.preaccept(minion_id, keys[minion_id].public)
    raise_fd_limit()
    log = (root / "master.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactord", "master", "-c", str(root / "master.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    socket_path = root / "state" / "control.sock"
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((root / "master.log").read_text()[-2000:])
        time.sleep(0.05)  # polling for the master's socket, with a deadline
    handle = MasterProcess(
        root,
        proc,
        (event_port, command_port),
        load_public_pem(root / "pki" / "master.pub"),
        load_signing_public_pem(root / "pki" / "master_sign.pub"),
    )
    try:
        yield handle
    finally:
        handle.stop()


@dataclass
class SimMinion:
    id: str
    keys: CurveKeys
    dealer: Any
    pub: Any
    epoch: str
    data: bytes
    tag: str
    next_seq: int = 1
    acked: int = 0
    sent: int = 0
    welcomed: bool = False
    jobs_answered: int = 0
    signing_key: bytes = b""
    stamps: dict[int, float] = field(default_factory=dict)


class Fleet:
    """Simulated minions in this process, all driven by one poll loop."""

    def __init__(
        self,
        master: MasterProcess,
        ids: list[str],
        keys: dict[str, CurveKeys],
        *,
        batch: int = 500,
        window: int = 20_000,
        payload: dict[str, Any] | None = None,
        tag: str = "beacon/load",
        hosts: list[str] | None = None,
    ) -> None:
        """``hosts``: the masters' addresses (the same ports on each); minion i is on
        ``hosts[i % len(hosts)]`` (127.0.0.1 by default)."""
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, 8 * len(ids) + 64)
        self.batch, self.window = batch, window
        self.minions: list[SimMinion] = []
        self.by_socket: dict[Any, SimMinion] = {}
        self.poller = zmq.Poller()
        data = codec.pack(payload or {"load1": 0.42, "load5": 0.31, "load15": 0.2, "cpus": 2, "over": False})
        hosts = hosts or ["127.0.0.1"]
        for index, minion_id in enumerate(ids):
            k = keys[minion_id]
            host = hosts[index % len(hosts)]
            dealer = self._socket(zmq.DEALER, k, master.master_key)
            dealer.setsockopt(zmq.ROUTING_ID, os.urandom(16))
            dealer.connect(f"tcp://{host}:{master.ports[1]}")
            pub = self._socket(zmq.PUB, k, master.master_key)
            pub.setsockopt(zmq.SNDHWM, 1000)
            pub.connect(f"tcp://{host}:{master.ports[0]}")
            sim = SimMinion(minion_id, k, dealer, pub, os.urandom(8).hex(), data, f"minion/{minion_id}/{tag}")
            self.minions.append(sim)
            self.by_socket[dealer] = sim
            self.poller.register(dealer, zmq.POLLIN)

    def _socket(self, kind: int, keys: CurveKeys, server: bytes) -> Any:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.curve_serverkey = server
        sock.curve_publickey, sock.curve_secretkey = keys.public_z85, keys.secret_z85
        return sock

    def hello(self, timeout: float = 120) -> None:
        for sim in self.minions:
            sim.dealer.send(m.Hello(id=sim.id, grains={"role": "bench"}, version="bench").to_wire())
        deadline = time.monotonic() + timeout
        while not all(s.welcomed for s in self.minions):
            if time.monotonic() > deadline:
                missing = sum(1 for s in self.minions if not s.welcomed)
                raise RuntimeError(f"{missing} simulated minions got no welcome")
            self.pump(0.1)

    def pump(self, timeout: float) -> None:
        """Read whatever the master sent: welcomes, acks, commands (answered at once)."""
        for sock, _ in self.poller.poll(timeout * 1000):
            sim = self.by_socket[sock]
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = m.decode(frame)
                if isinstance(message, m.Welcome):
                    sim.welcomed = message.status == "accepted"
                    sim.signing_key = message.signing_key
                elif isinstance(message, m.Ack) and message.epoch == sim.epoch:
                    sim.acked = max(sim.acked, message.seq)
                elif isinstance(message, m.Command):
                    verify_signature(sim.signing_key, message.sig, message.payload)
                    body = m.CommandBody.unpack(message.payload)
                    now = time.time()
                    sim.dealer.send(
                        m.Return(
                            jid=body.jid,
                            id=sim.id,
                            success=True,
                            retcode=0,
                            ret=True,
                            started=now,
                            finished=now,
                        ).to_wire()
                    )
                    sim.jobs_answered += 1

    def send(self, sim: SimMinion, count: int, now: float) -> int:
        """Queue up to ``count`` new events of ``sim``, within its window; returns how many."""
        room = self.window - (sim.next_seq - 1 - sim.acked)
        count = min(count, room, self.batch)
        if count <= 0:
            return 0
        first = sim.next_seq
        events = [(seq, sim.tag, now, sim.data, None) for seq in range(first, first + count)]
        try:
            sim.pub.send(m.pack_event_batch(sim.epoch, sim.acked + 1, events), zmq.NOBLOCK)
        except zmq.Again:
            return 0
        sim.next_seq += count
        sim.sent = sim.next_seq - 1
        return count

    def resend_unacked(self, now: float) -> None:
        """The at-least-once part: re-send, in batches, what the master has not acknowledged."""
        for sim in self.minions:
            seq = sim.acked + 1
            while seq < sim.next_seq:
                count = min(self.batch, sim.next_seq - seq)
                events = [(s, sim.tag, now, sim.data, None) for s in range(seq, seq + count)]
                try:
                    sim.pub.send(m.pack_event_batch(sim.epoch, sim.acked + 1, events), zmq.NOBLOCK)
                except zmq.Again:
                    break
                seq += count

    def all_acked(self) -> bool:
        return all(s.acked >= s.next_seq - 1 for s in self.minions)

    def close(self) -> None:
        for sim in self.minions:
            sim.dealer.close(0)
            sim.pub.close(0)
        self.ctx.term()


def make_keys(ids: list[str], cache: Path) -> dict[str, CurveKeys]:
    """Key pairs for simulated minions, cached on disk (generating 1,000 takes a moment)."""
    keys = {}
    cache.mkdir(parents=True, exist_ok=True)
    for minion_id in ids:
        keys[minion_id] = CurveKeys.load_or_create(cache, minion_id)
    return keys
