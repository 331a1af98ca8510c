"""What the attack tests share: a running setup with accepted minions, and raw hostile peers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys
from reactord.protocol.localsock import LocalClient
from tests.peers import RawPeer, master_key
from tests.support import Setup, wait_until


def running(setup: Setup, *ids: str, **minion_changes: Any) -> None:
    """Master up, these minions up and accepted."""
    setup.start_master()
    for minion_id in ids:
        setup.start_minion(minion_id, **minion_changes)
    if ids:
        setup.accept_all(*ids)


def ping(setup: Setup, minion_id: str) -> bool:
    result = setup.cli("run", "-L", minion_id, "test.ping", "--json", "--timeout", "5")
    return result.returncode == 0 and json.loads(result.stdout)["returns"][minion_id]["success"] is True


def assert_master_serves(setup: Setup, *ids: str) -> None:
    """The master still answers the CLI and still runs jobs on its minions."""
    assert setup.daemons[0].alive(), setup.daemons[0].output()[-2000:]
    assert setup.cli("key", "list").returncode == 0
    for minion_id in ids:
        wait_until(lambda m=minion_id: ping(setup, m), 20, f"{minion_id} to answer")


def minion_keys(setup: Setup, minion_id: str) -> CurveKeys:
    return CurveKeys.load_or_create(setup.root / "pki" / minion_id, "minion")


def curve_socket(ctx: zmq.Context[Any], kind: int, setup: Setup, keys: CurveKeys | None, port: int) -> Any:
    sock = ctx.socket(kind)
    sock.linger = 0
    if keys is not None:
        sock.curve_serverkey = master_key(setup.root)
        sock.curve_publickey, sock.curve_secretkey = keys.public_z85, keys.secret_z85
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def raw_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(payload)
            sock.settimeout(0.5)
            sock.recv(1024)
        except OSError:
            pass  # the daemon may drop us at any point: that is the expected outcome


# -- the post-condition of every hardening attack, and the traffic it checks -------------------


@contextmanager
def honest_traffic(setup: Setup, minion_id: str, every: float = 0.2) -> Iterator[list[str]]:
    """An honest minion sends events while the attack runs, through its local socket as
    ``reactord event send`` does; yields the tags sent so far (at least one, whole at exit)."""
    client = _local(setup, minion_id)
    sent: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def send_until_stopped() -> None:
        n = 0
        try:
            while True:
                n += 1
                client.call("event.send", tag=f"app/during/{n}", data={"n": n})
                sent.append(f"minion/{minion_id}/app/during/{n}")
                if stop.wait(every):  # paced, not waiting for a condition: the attack goes on meanwhile
                    return
        except BaseException as exc:  # surfaced in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=send_until_stopped, name=f"honest-{minion_id}", daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(60)
    assert not errors, f"{minion_id} could not send its events: {errors[0]!r}"
    assert sent, f"{minion_id} sent nothing during the attack"


def _local(setup: Setup, minion_id: str) -> LocalClient:
    return LocalClient(setup.root / "state" / minion_id / "minion.sock", timeout=30, daemon="minion")


def after_attack(setup: Setup, honest_id: str, sent_tags: list[str], *, pruned: bool = False) -> None:
    """What must hold after every attack: the master is alive, another minion's ``test.ping``
    answers within 5 s, and every event that minion sent during the attack is logged, once.

    ``pruned``: the attack made retention remove the oldest events, the honest ones among
    them; they were logged if the master acknowledged them all (it acknowledges only what it
    has written): the minion's outbox is empty.
    """
    master = setup.daemons[0]
    assert master.alive(), master.output()[-3000:]
    assert ping(setup, honest_id), f"{honest_id} did not answer test.ping within 5 s after the attack"
    what = f"the {len(sent_tags)} events {honest_id} sent to be logged"
    if pruned:
        outbox = _local(setup, honest_id)
        wait_until(lambda: outbox.call("status")["outbox"]["depth"] == 0, 30, what)
    else:
        expected = sorted(sent_tags)

        def logged() -> list[str]:
            tags = [e["tag"] for e in setup.events("--source", honest_id, "--tag", "minion/*/app/**")]
            return sorted(t for t in tags if t in set(expected))

        wait_until(lambda: logged() == expected, 30, what)
    assert master.alive(), master.output()[-3000:]


class RawMinion:
    """A tampered client that holds an accepted key: batches built by hand on a raw PUB, the
    master's answers (acks, commands, return acks) read on a raw DEALER.

    It joins as a new minion would: ``hello`` with a fresh key, then the operator accepts it.
    """

    def __init__(self, setup: Setup, minion_id: str) -> None:
        self.keys = CurveKeys.generate()
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.pub = curve_socket(self.ctx, zmq.PUB, setup, self.keys, setup.ports[0])
        self.pub.sndhwm = 0  # the test decides what is sent; the master decides what it takes
        self.peer = RawPeer(setup.ports[1], master_key(setup.root), self.keys)
        self.acked: dict[str, int] = {}
        self.commands: list[m.CommandBody] = []
        self.return_acks: list[str] = []
        self.peer.send(m.Hello(id=minion_id, grains={}, version="raw"))
        welcome = self.peer.recv()
        assert isinstance(welcome, m.Welcome) and welcome.status == "pending", welcome
        assert setup.cli("key", "accept", minion_id).returncode == 0
        accepted = self.read(10, until=lambda x: isinstance(x, m.Welcome) and x.status == "accepted")
        assert accepted, f"{minion_id} was not welcomed as accepted"

    def read(self, timeout: float, until: Callable[[m.Message], bool] = lambda _: False) -> bool:
        """Read what the master sent, for at most ``timeout`` s or until a message ``until`` likes."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.peer.recv(left)
            if message is None:
                return False
            if isinstance(message, m.Ack):
                self.acked[message.epoch] = max(self.acked.get(message.epoch, 0), message.seq)
            elif isinstance(message, m.Command):
                self.commands.append(m.CommandBody.unpack(message.payload))
            elif isinstance(message, m.ReturnAck):
                self.return_acks.append(message.jid)
            if until(message):
                return True
        return False

    def deliver(self, epoch: str, events: list[m.WireEvent], per_frame: int, timeout: float = 120) -> None:
        """Publish ``events`` (consecutive seqs) as batches until the master acknowledged them
        all, sending again from the last acknowledgement what it did not take (as a minion does)."""
        chunks = [events[i : i + per_frame] for i in range(0, len(events), per_frame)]
        last = events[-1][0]
        deadline = time.monotonic() + timeout
        while self.acked.get(epoch, 0) < last:
            assert time.monotonic() < deadline, f"{epoch}: acknowledged {self.acked.get(epoch)} of {last}"
            before = self.acked.get(epoch, 0)
            for chunk in [c for c in chunks if c[-1][0] > before][:8]:  # packed as sent: large ones add up
                self.pub.send(m.EventBatch(epoch=epoch, base=events[0][0], events=chunk).to_wire())
            self.read(1.0, until=lambda _: self.acked.get(epoch, 0) > before)  # noqa: B023

    def close(self) -> None:
        self.pub.close(linger=0)
        self.ctx.term()
        self.peer.close()
