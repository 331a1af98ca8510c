"""Attacks from the network by someone with no accepted key: only `hello` is ever read."""

from __future__ import annotations

import os
import time

import zmq

from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys
from tests.peers import RawPeer, master_key
from tests.security.helpers import assert_master_serves, curve_socket, raw_tcp, running
from tests.support import Setup, wait_until


def test_raw_tcp_garbage_on_every_port_is_ignored_and_the_master_keeps_serving(setup: Setup) -> None:
    running(setup, "web01")
    for port in setup.ports:
        raw_tcp(port, b"GET / HTTP/1.0\r\n\r\n")
        raw_tcp(port, os.urandom(4096))
        raw_tcp(port, b"\xff" + b"\x00" * 8 + b"\x7f" + os.urandom(64))  # a ZMTP greeting, then noise
        raw_tcp(port, os.urandom(2 << 20))
    assert_master_serves(setup, "web01")
    assert setup.cli_json("key", "list")["pending"] == []


def test_a_zeromq_peer_without_curve_gets_no_answer_and_sends_nothing_through(setup: Setup) -> None:
    running(setup, "web01")
    before = setup.counters().get("frames.received", 0)
    ctx = zmq.Context()
    dealer = curve_socket(ctx, zmq.DEALER, setup, None, setup.ports[1])
    pub = curve_socket(ctx, zmq.PUB, setup, None, setup.ports[0])
    try:
        batch = m.EventBatch(epoch="plain", base=1, events=[[1, "minion/web01/x", time.time(), {}, None]])
        for _ in range(20):
            dealer.send(m.Hello(id="plain", grains={}, version="x").to_wire())
            pub.send(batch.to_wire())
        assert not dealer.poll(1000)
    finally:
        dealer.close()
        pub.close()
        ctx.term()
    assert setup.counters().get("frames.received", 0) == before
    assert setup.events("--tag", "minion/web01/x") == []
    assert "plain" not in setup.cli_json("key", "list")["pending"]
    assert_master_serves(setup, "web01")


def test_an_unknown_curve_key_is_only_heard_saying_hello(setup: Setup) -> None:
    running(setup, "web01")
    stranger = CurveKeys.generate()
    peer = RawPeer(setup.ports[1], master_key(setup.root), stranger)
    ctx = zmq.Context()
    pub = curve_socket(ctx, zmq.PUB, setup, stranger, setup.ports[0])
    try:
        hostile: list[bytes] = [
            m.Heartbeat(time=time.time()).to_wire(),
            m.Return(
                jid="01J00000000000000000000000", id="web01", success=True, retcode=0, ret="x"
            ).to_wire(),
            m.Welcome(status="accepted", signing_key=b"k" * 32).to_wire(),
            m.Command(payload=b"p", sig=b"s").to_wire(),
            m.Ack(epoch="e", seq=10**9).to_wire(),
            m.ReturnAck(jid="x").to_wire(),
            m.Pong(time=1.0).to_wire(),
            codec.pack(["run", {"fun": "cmd.run", "args": ["id"]}]),
            *(codec.pack([os.urandom(6).hex(), {"x": 1}]) for _ in range(20)),
        ]
        batch = m.EventBatch(
            epoch="e", base=1, events=[[1, "minion/web01/evil", time.time(), {}, None]]
        ).to_wire()

        def all_dropped() -> bool:
            for frame in hostile:
                peer.send(frame)
            pub.send(batch)
            counters = setup.counters()
            return counters.get("drop.unauthenticated", 0) >= 5 and counters.get("frames.received", 0) >= 1

        wait_until(all_dropped, 20, "the hostile frames to be dropped")
        assert peer.recv(timeout=0.5) is None  # nothing but hello is answered
        for n in range(5):
            peer.send(m.Hello(id=f"rand{n}{os.urandom(3).hex()}", grains={}, version="x"))
        answers = [peer.recv() for _ in range(5)]
        assert [a.status for a in answers if isinstance(a, m.Welcome)] == ["pending"] + ["denied"] * 4
    finally:
        peer.close()
        pub.close()
        ctx.term()
    assert len(setup.cli_json("key", "list")["pending"]) == 1  # one key, one id: the rest were not stored
    assert setup.events("--tag", "minion/web01/evil") == []
    assert all(j["origin"] == "rule:ping-new-minion" for j in setup.cli_json("jobs"))  # the example rule only
    assert setup.cli("jobs", "show", "01J00000000000000000000000").returncode == 1
    assert [x["id"] for x in setup.cli_json("minions")] == ["web01"]
    assert_master_serves(setup, "web01")
