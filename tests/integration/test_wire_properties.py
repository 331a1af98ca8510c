"""The properties behind the performance numbers, checked as behaviour (counts, never time):
events travel in batches, acknowledgements are cumulative, rules are found through the index."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from minion.commands import Commands
from minion.delivery import Delivery
from minion.executor import Executor
from minion.functions import BUILTINS
from minion.outbox import Outbox
from minion.state import MinionState
from reactord.base.stats import Stats
from reactord.bus import Bus
from reactord.jobrunner import JobRunner
from reactord.pipeline import EventPipeline
from reactord.protocol import messages as m
from reactord.protocol.keys import Signer
from reactord.store.database import Database
from reactord.store.eventlog import EventLog
from reactord.store.jobstore import JobStore
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


# -- commands, returns and their acknowledgements: written together ------------------------------


class _CountingState(MinionState):
    """A real minion state that counts its transactions of claims and of returns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims: list[int] = []
        self.stores: list[int] = []

    def claim_many(self, jobs: Any, now: float) -> list[bool]:
        self.claims.append(len(jobs))
        return super().claim_many(jobs, now)

    def store_returns(self, returns: Any) -> list[bool]:
        self.stores.append(len(returns))
        return super().store_returns(returns)


def test_a_burst_of_commands_is_claimed_in_one_transaction_and_returns_stored_together(
    tmp_path: Path,
) -> None:
    """50 commands arriving in one turn of the minion's loop: one claim transaction; returns
    ending in one turn: one store; acknowledgements: written together, not one by one."""
    signer = Signer(Ed25519PrivateKey.generate())
    state = _CountingState(tmp_path / "minion.db")
    sent: list[bytes] = []

    async def send(wire: bytes) -> None:
        sent.append(wire)

    async def guard(work: Any) -> None:
        await work

    executor = Executor("web01", BUILTINS, {}, workers=4)
    commands = Commands("web01", state, executor, send, guard)

    def command(n: int) -> m.Command:
        body = m.CommandBody(
            jid=f"j{n:03d}",
            id="web01",
            fun="test.ping",
            args=[],
            kwargs={},
            timeout=5.0,
            expires=time.time() + 60,
            nonce=os.urandom(16),
        ).pack()
        return m.Command(payload=body, sig=signer.sign(body))

    async def burst() -> None:
        for n in range(50):
            commands.on_command(command(n), signer.public)
        commands.on_command(command(7), signer.public)  # the same command twice: runs once
        await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*commands.tasks), 10)
        await asyncio.gather(*(commands._send_return(f"j{n:03d}", b"again") for n in range(20)))

    try:
        asyncio.run(burst())
        assert state.claims == [51] and len(sent) == 70
        assert sum(state.stores) == 70 and state.stores[-1] == 20  # the 20 ending together: one store
        for n in range(50):
            state.ack(f"j{n:03d}")
        acked = state.conn.execute("SELECT count(*) FROM jobs WHERE acked=1").fetchone()[0]
        assert acked == 0 and state.unacked() == []  # in memory: not sent again, not yet written
        state.flush()
        assert state.conn.execute("SELECT count(*) FROM jobs WHERE acked=1").fetchone()[0] == 50
    finally:
        executor.cancel_all()
        state.close()


def test_a_return_is_sent_before_its_sync_to_disk_and_stored_in_the_same_turn(tmp_path: Path) -> None:
    """Issue 18's (h): the return does not wait for the minion's sync to disk; it is stored in
    the turn it was sent in, and an acknowledgement that overtakes the store leaves nothing to
    re-send."""
    order: list[str] = []

    class State(MinionState):
        def store_returns(self, returns: Any) -> list[bool]:
            order.extend(f"store {jid}" for jid, _ in returns)
            return super().store_returns(returns)

    state = State(tmp_path / "minion.db")

    async def send(wire: bytes) -> None:
        order.append(f"send {wire.decode()}")
        state.ack(wire.decode())  # the master's acknowledgement, before the store
        state.flush()

    async def guard(work: Any) -> None:
        await work

    executor = Executor("web01", BUILTINS, {}, workers=1)
    commands = Commands("web01", state, executor, send, guard)
    try:
        assert state.claim("j1", "test.ping", time.time() + 60, time.time())
        asyncio.run(commands._send_return("j1", b"j1"))
        assert order == ["send j1", "store j1"]
        assert state.unacked() == []
        assert state.conn.execute("SELECT acked, ret FROM jobs WHERE jid='j1'").fetchone() == (1, None)
    finally:
        executor.cancel_all()
        state.close()


def test_a_jobs_row_and_a_returns_row_are_written_with_their_events(tmp_path: Path) -> None:
    """No transaction of their own: the job's row goes with reactor/job/<jid>/new, the return's
    with reactor/job/<jid>/ret/<id> (the master's emit takes them as ``writes``)."""
    store = JobStore(Database(tmp_path / "m.db", MIGRATIONS))
    own: list[str] = []
    store.add = lambda job: own.append("add")  # type: ignore[method-assign]
    store.add_return = lambda ret, received: own.append("add_return") or True  # type: ignore[method-assign]
    emitted: list[tuple[str, list[str]]] = []

    def emit(tag: str, data: dict[str, Any], *, writes: Any = None, **how: Any) -> None:
        made = writes([]) if writes is not None else []
        emitted.append((tag, [sql.split("(")[0].strip() for sql, _ in made]))
        with store.db.writing() as conn:
            for sql, rows in made:
                conn.executemany(sql, rows)

    class Link:
        def send(self, minion_id: str, message: m.Message) -> bool:
            return True

    jobs = JobRunner(store, Link(), Signer(Ed25519PrivateKey.generate()), emit, command_ttl=60.0)
    job = jobs.start(["web01"], "test.ping", [], {}, timeout=5.0, target="web01", target_type="glob")
    ret = m.Return(jid=job.jid, id="web01", success=True, retcode=0, ret=True, started=1.0, finished=2.0)
    assert jobs.on_return("web01", ret) and jobs.on_return(
        "web01", ret
    )  # the second: acked, not stored again
    assert own == []
    assert emitted == [
        (f"reactor/job/{job.jid}/new", ["INSERT INTO jobs"]),
        (f"reactor/job/{job.jid}/ret/web01", ["INSERT OR IGNORE INTO returns"]),
    ]
