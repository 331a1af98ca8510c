"""The command channel on real CURVE sockets: who is heard, who is routed to, who is refused."""

from __future__ import annotations

from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys
from tests.integration.conftest import MasterThread
from tests.peers import RawPeer
from tests.support import wait_until


def _peer(runner: MasterThread, keys: CurveKeys | None = None) -> RawPeer:
    config = runner.master.config
    return RawPeer(config.command_port, runner.master.keys.public, keys)


def _accepted_peer(runner: MasterThread, minion_id: str) -> RawPeer:
    peer = _peer(runner)
    peer.send(m.Hello(id=minion_id, grains={"id": minion_id}, version="t"))
    assert isinstance(peer.recv(), m.Welcome)
    runner.run_sync(runner.master.nodes.accept, minion_id)
    welcome = peer.recv()
    assert isinstance(welcome, m.Welcome) and welcome.status == "accepted"
    assert welcome.signing_key == runner.master.signer.public
    return peer


def test_commands_are_routed_by_authenticated_key_only(master_thread: MasterThread) -> None:
    a = _accepted_peer(master_thread, "a")
    b = _accepted_peer(master_thread, "b")
    try:
        jobs = master_thread.master.jobs

        async def run_on(ids: list[str]) -> dict[str, object]:
            job = jobs.start(ids, "test.ping", [], {}, timeout=0.3, target="x", target_type="list")
            result = await jobs.follow(job)
            return result.returns

        returns = master_thread.call(run_on(["b"]))
        command = b.recv()
        assert isinstance(command, m.Command)
        assert m.CommandBody.unpack(command.payload).id == "b"
        assert a.recv(timeout=0.3) is None
        assert returns["b"]["success"] is False  # type: ignore[index]

        a.close()
        returns = master_thread.call(run_on(["a"]))
        assert returns["a"]["success"] is False  # type: ignore[index]
        assert b.recv(timeout=0.3) is None
    finally:
        b.close()


def test_unknown_keys_are_only_heard_saying_hello(master_thread: MasterThread) -> None:
    peer = _peer(master_thread)
    stats = master_thread.master.stats
    try:
        peer.send(m.Heartbeat(time=1.0))
        peer.send(m.Return(jid="J", id="a", success=True, retcode=0, ret=None))
        peer.send(b"\x00garbage")
        wait_until(
            lambda: stats.get("drop.unauthenticated") == 2 and stats.get("drop.malformed") == 1,
            5,
            "drops counted",
        )
        assert peer.recv(timeout=0.3) is None
        peer.send(m.Hello(id="new", grains={}, version="t"))
        welcome = peer.recv()
        assert isinstance(welcome, m.Welcome) and welcome.status == "pending"
        assert master_thread.master.registry.all() == []
    finally:
        peer.close()


def test_denied_and_rejected_keys_are_refused_at_the_handshake(master_thread: MasterThread) -> None:
    master = master_thread.master
    accepted = _accepted_peer(master_thread, "web01")
    accepted.close()
    impostor_keys = CurveKeys.generate()
    impostor = _peer(master_thread, impostor_keys)
    try:
        impostor.send(m.Hello(id="web01", grains={}, version="t"))
        welcome = impostor.recv()
        assert isinstance(welcome, m.Welcome) and welcome.status == "denied"
    finally:
        impostor.close()
    refused_before = master.stats.get("handshake.refused")
    again = _peer(master_thread, impostor_keys)
    try:
        again.send(m.Hello(id="web01", grains={}, version="t"))
        assert again.recv(timeout=0.5) is None
        wait_until(lambda: master.stats.get("handshake.refused") > refused_before, 5, "refusal counted")
    finally:
        again.close()
