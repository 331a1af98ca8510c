"""The local bus on a real ipc socket: it publishes while anyone, on any topic, watches."""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.asyncio

from reactord.bus import Bus
from reactord.protocol import codec
from reactord.protocol.events import Event
from tests.support import wait_until

PROBES = codec.pack(["probe", ""])[:7]  # the frames that start ["probe", ...


def _seen(sub: zmq.Socket[bytes], bus: Bus, token: str) -> bool:
    """Probe the bus and say whether ``sub`` received the probe: its subscription is live."""
    bus.probe(token)
    if sub.poll(50):
        while sub.poll(0):
            if codec.unpack(sub.recv()) == ["probe", token]:
                return True
    return False


def _topics(bus: Bus) -> set[bytes]:
    """The topics the bus knows of, after it read what the watchers sent (a probe reads them)."""
    bus.probe("read")
    return set(bus._topics)


def test_one_watcher_leaving_does_not_silence_the_bus_for_the_others(tmp_path: Path) -> None:
    ctx = zmq.asyncio.Context()
    bus = Bus(ctx, tmp_path / "bus.ipc")
    bus.bind()
    plain = zmq.Context.shadow(ctx.underlying)
    everything = plain.socket(zmq.SUB)
    only_probes = plain.socket(zmq.SUB)
    try:
        for sub, topic in ((everything, b""), (only_probes, PROBES)):
            sub.setsockopt(zmq.LINGER, 0)
            sub.connect(f"ipc://{bus.path}")
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        wait_until(lambda: _seen(everything, bus, "a") and _seen(only_probes, bus, "b"), 10, "both watchers")
        assert bus.watched

        only_probes.setsockopt(zmq.UNSUBSCRIBE, PROBES)
        wait_until(lambda: _topics(bus) == {b""}, 10, "the unsubscribe")
        assert bus.watched, "the other watcher still subscribes to everything"
        bus.publish([Event(id="E1", tag="minion/web01/beacon/load", source="web01", time=1.0, data={})])
        frames = []
        while everything.poll(2000):
            frames.append(codec.unpack(everything.recv()))
            if frames[-1][0] != "probe":
                break
        assert frames and frames[-1][0] != "probe", f"the event was not published: {frames}"

        everything.setsockopt(zmq.UNSUBSCRIBE, b"")
        wait_until(lambda: _topics(bus) == set(), 10, "the last watcher to leave")
        assert not bus.watched
    finally:
        everything.close(linger=0)
        only_probes.close(linger=0)
        bus.close()
        ctx.term()
