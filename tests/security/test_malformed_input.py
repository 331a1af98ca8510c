"""Oversized and malformed messages, and floods: bounded memory, no crash, dropped and counted."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys
from tests.peers import RawPeer, master_key
from tests.security.helpers import assert_master_serves, curve_socket, minion_keys, running
from tests.support import Setup, rss_kib, wait_until

MALFORMED = [
    b"",
    b"\xc1",  # a byte msgpack never uses
    codec.pack(["events"]),
    codec.pack(["events", {"epoch": "e", "base": 1, "events": [[1, 2, 3]]}]),
    codec.pack(["events", {"epoch": "e", "base": "one", "events": []}]),
    codec.pack(["heartbeat", {"time": "now"}]),
    codec.pack(["return", {"jid": "x", "id": "../../etc", "success": 1, "retcode": 0, "ret": None}]),
    codec.pack(["hello", {"id": "x" * 500, "grains": [], "version": 1}]),
    codec.pack(["events", {"epoch": "e", "base": 1, "events": []}])[:-3],  # truncated
    b"\x91" * 50_000 + b"\xc0",  # nesting deeper than any decoder allows
    msgpack.packb(msgpack.ExtType(42, b"x" * 100)),
    msgpack.packb(["pong", {1: 2}]),
    msgpack.packb(["pong", {"time": 1.0}]) + b"trailing",
]


def test_malformed_frames_from_an_accepted_key_are_dropped_and_counted(setup: Setup) -> None:
    running(setup, "web01")
    keys = minion_keys(setup, "web01")
    peer = RawPeer(setup.ports[1], master_key(setup.root), keys)
    ctx = zmq.Context()
    pub = curve_socket(ctx, zmq.PUB, setup, keys, setup.ports[0])
    try:

        def counted() -> bool:
            for frame in MALFORMED:
                peer.send(frame)
                pub.send(frame)
            return setup.counters().get("drop.malformed", 0) >= 2 * (len(MALFORMED) - 1)

        wait_until(counted, 20, "the malformed frames to be counted")
    finally:
        peer.close()
        pub.close()
        ctx.term()
    assert_master_serves(setup, "web01")


def test_a_frame_over_the_size_limit_never_reaches_the_master(setup: Setup) -> None:
    setup.edit_master(max_message_size=65536)
    running(setup, "web01")
    keys = minion_keys(setup, "web01")
    ctx = zmq.Context()
    pub = curve_socket(ctx, zmq.PUB, setup, keys, setup.ports[0])
    before = setup.counters().get("frames.received", 0)
    huge = m.EventBatch(
        epoch="big", base=1, events=[[1, "minion/web01/big", 1.0, {"x": "a" * 200_000}, None]]
    )
    try:
        for _ in range(20):
            pub.send(huge.to_wire())
    finally:
        pub.close()
        ctx.term()
    assert_master_serves(setup, "web01")
    assert setup.events("--tag", "minion/web01/big") == []
    assert setup.counters().get("frames.received", 0) == before  # libzmq cut the connection (MAXMSGSIZE)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_million_tiny_messages_leave_memory_bounded_and_the_master_serving(setup: Setup) -> None:
    running(setup, "web01")
    master = setup.daemons[0]
    rss_before = rss_kib(master.proc.pid)
    ctx = zmq.Context()
    stranger = curve_socket(ctx, zmq.PUB, setup, CurveKeys.generate(), setup.ports[0])
    insider = curve_socket(ctx, zmq.PUB, setup, minion_keys(setup, "web01"), setup.ports[0])
    peer = RawPeer(setup.ports[1], master_key(setup.root), CurveKeys.generate())
    stranger.sndhwm = insider.sndhwm = 0
    try:
        wait_until(
            lambda: (stranger.send(b"x"), setup.counters().get("drop.unauthenticated", 0) > 0)[1],
            20,
            "the flood to start arriving",
        )
        for n in range(500_000):
            stranger.send(b"\x00")
            insider.send(b"\x01")
            if n % 100_000 == 0:
                peer.send(b"\x02" * 8)
        wait_until(lambda: setup.counters().get("drop.malformed", 0) > 10_000, 60, "the flood to be read")
        assert setup.cli("key", "list").returncode == 0  # serving while flooded
    finally:
        stranger.close()
        insider.close()
        peer.close()
        ctx.term()
    counters = setup.counters()
    assert counters["drop.unauthenticated"] > 10_000 and counters["drop.malformed"] > 10_000
    assert rss_kib(master.proc.pid) - rss_before < 60_000  # KiB
    assert_master_serves(setup, "web01")
