"""The properties behind the performance numbers, checked as behaviour (counts, never time):
events travel in batches, acknowledgements are cumulative, rules are found through the index."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from minion.delivery import Delivery
from minion.outbox import Outbox
from reactord.base.stats import Stats
from reactord.bus import Bus
from reactord.pipeline import EventPipeline
from reactord.protocol import messages as m
from reactord.store.database import Database
from reactord.store.eventlog import EventLog
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable
from tests.support import free_ports


def test_events_are_batched_on_the_wire(tmp_path: Path) -> None:
    """1,200 events leave a minion as 3 frames, not 1,200 (and re-sent as batches too)."""
    outbox = Outbox(tmp_path / "o.db", "web01", max_events=10_000, policy="drop_oldest")
    outbox.append([("load", {"n": n}) for n in range(1200)])
    port = free_ports(1)[0]

    async def scenario() -> list[m.EventBatch]:
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.bind(f"tcp://127.0.0.1:{port}")
        pub = ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{port}")
        frames: list[m.EventBatch] = []
        try:
            delivery = Delivery(outbox, pub, ready=lambda: True, batch_events=500)
            task = asyncio.ensure_future(delivery.run())
            async with asyncio.timeout(20):
                while sum(len(f.events) for f in frames) < 1200:
                    if not await sub.poll(200):
                        delivery.restart()  # a PUB/SUB slow join drops the first frames: send again
                        continue
                    frames.append(m.EventBatch.from_wire(await sub.recv()))
                    if frames[-1].events[0][0] == 1:
                        frames = frames[-1:]  # count from a complete pass
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return frames
        finally:
            pub.close(0)
            sub.close(0)
            ctx.term()

    frames = asyncio.run(scenario())
    assert [len(f.events) for f in frames] == [500, 500, 200]
    assert [f.events[0][0] for f in frames] == [1, 501, 1001]


class _Acks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def __call__(self, source: str, epoch: str, seq: int) -> None:
        self.sent.append((source, epoch, seq))


def test_acks_are_cumulative_one_per_minion_per_commit(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    ctx = zmq.asyncio.Context()
    acks = _Acks()
    bus = Bus(ctx, tmp_path / "bus.sock")
    pipeline = EventPipeline(EventLog(db), StateTable(db), bus, Stats(), send_ack=acks)
    now = time.time()

    def batch(source: str, first: int, count: int) -> m.EventBatch:
        events: list[Any] = [[s, f"minion/{source}/x", now, {}, None] for s in range(first, first + count)]
        return m.EventBatch(epoch="e1", base=first, events=events)

    for first in (1, 501, 1001):
        pipeline.offer("web01", batch("web01", first, 500))
    pipeline.offer("web02", batch("web02", 1, 10))
    pipeline.commit()
    assert sorted(acks.sent) == [("web01", "e1", 1500), ("web02", "e1", 10)]
    pipeline.offer("web01", batch("web01", 1, 500))  # a re-send of what was acknowledged
    pipeline.commit()
    assert acks.sent[-1] == ("web01", "e1", 1500)  # acknowledged again, logged once
    assert EventLog(db).count() == 1510
    bus.close()
    ctx.term()
