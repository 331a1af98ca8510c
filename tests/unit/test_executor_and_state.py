"""The minion's executor (no sockets) and its replay-defence database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from minion.config import DEFAULT_ALLOW
from minion.executor import Executor, wire_safe
from minion.functions import BUILTINS, allowed
from minion.state import MinionState
from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError
from reactord.protocol.messages import CommandBody


def _body(fun: str, *args: Any, timeout: float = 5.0, **kwargs: Any) -> CommandBody:
    return CommandBody(
        jid="01JX",
        id="web01",
        fun=fun,
        args=list(args),
        kwargs=kwargs,
        timeout=timeout,
        expires=1e12,
        nonce=b"n",
    )


def _run(body: CommandBody) -> Any:
    executor = Executor("web01", BUILTINS, {"os": "Linux", "roles": {"a": 1}}, workers=2)
    try:
        return asyncio.run(executor.run(body))
    finally:
        executor.cancel_all()


def test_success_failure_bad_arguments_unknown_function_and_timeout() -> None:
    ok = _run(_body("test.echo", "hi"))
    assert (ok.success, ok.ret, ok.retcode, ok.error) == (True, "hi", 0, None)
    assert _run(_body("grains.get", "roles:a")).ret == 1

    failed = _run(_body("test.fail", "nope"))
    assert (failed.success, failed.retcode) == (False, 1)
    assert failed.error == "RuntimeError: nope"

    bad_args = _run(_body("test.echo"))
    assert not bad_args.success and "bad arguments" in (bad_args.error or "")

    unknown = _run(_body("os.system", "id"))
    assert not unknown.success and unknown.error == "no function os.system on this minion"

    slow = _run(_body("test.sleep", 30, timeout=0.2))
    assert (slow.success, slow.retcode) == (False, 124)
    assert slow.error == "timed out after 0.2s"


def test_return_values_are_made_packable() -> None:
    value = codec.unpack(
        codec.pack(wire_safe({"p": Path("/x"), "t": (1, 2), "s": {3}, "o": object, 5: 2**70}))
    )
    assert value["p"] == "/x" and value["t"] == [1, 2] and value["s"] == [3] and value["5"] == str(2**70)


def test_a_jid_is_claimed_once_and_returns_wait_for_their_ack(tmp_path: Path) -> None:
    state = MinionState(tmp_path / "minion.db")
    assert state.claim("j1", "test.ping", expires=100.0, now=1.0)
    assert not state.claim("j1", "test.ping", expires=100.0, now=2.0)
    state.store_return("j1", b"ret")
    assert state.unacked() == [b"ret"]
    state.ack("j1")
    assert state.unacked() == []
    assert state.prune(now=50.0) == 0  # not expired: the claim stays
    assert state.prune(now=200.0) == 1
    state.close()
    reopened = MinionState(tmp_path / "minion.db")
    assert reopened.claim("j2", "x", 1.0, 1.0) and not reopened.claim("j2", "x", 1.0, 1.0)
    assert (tmp_path / "minion.db").stat().st_mode & 0o777 == 0o600


def test_functions_outside_the_allow_list_are_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    known = {**BUILTINS}
    executor = Executor("web01", allowed(known, DEFAULT_ALLOW), {}, workers=1, known=known)
    try:
        ret = asyncio.run(executor.run(_body("cmd.run", ["touch", str(marker)])))
    finally:
        executor.cancel_all()
    assert not ret.success
    assert ret.error == "cmd.run is not allowed on this minion (functions.allow in minion.yaml)"
    assert not marker.exists()
    assert "cmd.run" not in allowed(known, DEFAULT_ALLOW) and "test.ping" in allowed(known, DEFAULT_ALLOW)


def test_an_event_too_large_to_ever_deliver_is_refused_at_the_door(tmp_path: Path) -> None:
    from minion.outbox import EventTooLarge, Outbox

    outbox = Outbox(tmp_path / "o.db", "web01", max_events=10, policy="drop_oldest", max_event_bytes=1000)
    with pytest.raises(EventTooLarge, match="could never be delivered"):
        outbox.append([("big", {"x": "a" * 2000})])
    assert outbox.append([("small", {"x": "a"})]) == [1]
    outbox.close()


def test_an_event_no_master_would_take_is_refused_at_the_door(tmp_path: Path) -> None:
    """Data nested too deep, or a value msgpack cannot carry, never enters the outbox: such
    an event would be refused by the master on every try and hold up the events behind it."""
    from minion.outbox import Outbox
    from reactord.protocol.errors import EncodeError

    deep: dict[str, object] = {}
    inner = deep
    for _ in range(64):  # 65 levels in all
        inner["x"] = inner = {}
    outbox = Outbox(tmp_path / "o.db", "web01", max_events=10, policy="drop_oldest", max_event_bytes=100_000)
    with pytest.raises(EncodeError, match="deeper than 64 levels"):
        outbox.append([("deep", deep)])
    with pytest.raises(EncodeError, match="cannot be sent"):
        outbox.append([("huge", {"n": 2**64})])
    with pytest.raises(EncodeError, match="cannot be sent"):
        outbox.append([("object", {"o": object()})])
    assert outbox.depth == 0
    assert outbox.append([("fine", deep["x"])]) == [1]  # 64 levels
    outbox.close()


def test_a_return_nested_too_deep_is_replaced_by_an_error_not_sent_to_be_refused() -> None:
    def deep() -> object:
        value: object = 1
        for _ in range(200):
            value = [value]
        return value

    known = {"test.deep": deep}
    executor = Executor("web01", known, {}, workers=1, known=known)
    try:
        ret = asyncio.run(executor.run(_body("test.deep")))
    finally:
        executor.cancel_all()
    assert not ret.success and ret.ret is None and "nests deeper than 63 levels" in (ret.error or "")
    assert isinstance(m.decode(ret.to_wire()), m.Return)  # what is sent, the master reads
    with pytest.raises(DecodeError, match="nests deeper"):  # what a peer sends unchecked, it refuses
        m.decode(m.Return(jid="j1", id="web01", success=True, retcode=0, ret=deep()).to_wire())


# -- a full disk (SQLITE_FULL made on purpose; tests/faults fills a real filesystem) -------------


def _refuse_writes(conn: sqlite3.Connection, table: str, op: str) -> None:
    """From now on an ``op`` (INSERT, UPDATE, DELETE) on ``table`` fails as a full disk does."""
    conn.execute(
        f"CREATE TEMP TRIGGER full_{op.lower()} BEFORE {op} ON main.{table} "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


def _allow_writes(conn: sqlite3.Connection, op: str) -> None:
    conn.execute(f"DROP TRIGGER temp.full_{op.lower()}")


def test_an_outbox_that_cannot_grow_refuses_the_whole_append_and_its_counters_stay_right(
    tmp_path: Path,
) -> None:
    from minion.errors import OutboxUnavailable
    from minion.outbox import Outbox

    path = tmp_path / "outbox.db"
    outbox = Outbox(path, "web01", max_events=100_000, policy="drop_oldest")
    assert outbox.append([("load", {"n": n}) for n in range(10)]) == list(range(1, 11))
    pages = outbox.conn.execute("PRAGMA page_count").fetchone()[0]
    outbox.conn.execute(f"PRAGMA max_page_count={pages}")  # the file cannot grow: SQLITE_FULL
    with pytest.raises(OutboxUnavailable) as refused:
        outbox.append([("load", {"blob": "x" * 2000}) for _ in range(100)])
    assert str(refused.value) == f"cannot write {path}: disk full; nothing was queued"
    assert not outbox.conn.in_transaction  # rolled back, no 'cannot rollback' on the way
    assert (outbox.next_seq, outbox.depth, outbox.refused) == (11, 10, 100)
    assert outbox.conn.execute("SELECT COUNT(*), MAX(seq) FROM outbox").fetchone() == (10, 10)
    outbox.conn.execute("PRAGMA max_page_count=1073741823")  # space again: it goes on by itself
    assert outbox.append([("load", {"n": 11})]) == [11]
    assert outbox.unwritable is None
    outbox.close()
    reopened = Outbox(path, "web01", max_events=100_000, policy="drop_oldest")
    assert (reopened.next_seq, reopened.depth) == (12, 11)
    reopened.close()


class _Socket:
    """Stands in for the PUB socket: keeps what is sent."""

    def __init__(self) -> None:
        self.frames: list[m.EventBatch] = []

    async def send(self, frame: bytes, flags: int = 0) -> None:
        batch = m.decode(frame)
        assert isinstance(batch, m.EventBatch)
        self.frames.append(batch)


def test_an_ack_whose_delete_fails_is_kept_in_memory_and_nothing_acknowledged_is_sent_again(
    tmp_path: Path,
) -> None:
    from minion.delivery import Delivery
    from minion.outbox import PURGE_RETRY, Outbox

    now = [0.0]
    outbox = Outbox(
        tmp_path / "outbox.db", "web01", max_events=100_000, policy="drop_oldest", monotonic=lambda: now[0]
    )
    socket = _Socket()
    delivery = Delivery(outbox, socket, ready=lambda: True, batch_events=100)  # type: ignore[arg-type]
    outbox.append([("load", {"n": n}) for n in range(1, 11)])
    asyncio.run(delivery._send_batch())
    assert [e[0] for e in socket.frames[-1].events] == list(range(1, 11))

    _refuse_writes(outbox.conn, "outbox", "DELETE")
    delivery.on_ack(outbox.epoch, 8)  # the delete fails: not fatal, the position is kept
    assert outbox.purge_pending and (outbox.base(), outbox.depth, delivery.acked) == (9, 2, 8)
    assert outbox.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 10
    outbox.append([("load", {"n": 11})])
    delivery.restart()  # a reconnect: everything not acknowledged again, nothing acknowledged
    asyncio.run(delivery._send_batch())
    assert socket.frames[-1].base == 9
    assert [e[0] for e in socket.frames[-1].events] == [9, 10, 11]

    _allow_writes(outbox.conn, "DELETE")
    outbox.purge()  # too early: a failed delete is retried at most every PURGE_RETRY seconds
    assert outbox.purge_pending
    now[0] += PURGE_RETRY
    outbox.purge()
    assert not outbox.purge_pending
    assert outbox.conn.execute("SELECT MIN(seq), COUNT(*) FROM outbox").fetchone() == (9, 3)
    delivery.on_ack(outbox.epoch, 11)  # everything acknowledged: the table is cleared
    assert outbox.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0 and outbox.depth == 0
    outbox.close()


def test_a_job_is_not_claimed_on_a_full_disk_and_returns_wait_in_memory_until_acknowledged(
    tmp_path: Path,
) -> None:
    from reactord.protocol.errors import StorageFull

    state = MinionState(tmp_path / "minion.db")
    assert state.claim("j1", "test.ping", expires=1e12, now=1.0)
    _refuse_writes(state.conn, "jobs", "INSERT")
    with pytest.raises(StorageFull, match=r"minion\.db: disk full"):  # the caller must not run j2
        state.claim("j2", "test.ping", expires=1e12, now=1.0)
    assert not state.ran("j2")
    _refuse_writes(state.conn, "jobs", "UPDATE")
    assert not state.store_return("j1", b"ret1")  # kept in memory, sent anyway
    assert not state.store_return("j2", b"refusal")  # a refusal: no claim to store it with
    assert state.unacked() == [b"ret1", b"refusal"]
    state.ack("j2")
    assert state.unacked() == [b"ret1"]
    state.flush()  # still full: nothing changes
    assert state.unacked() == [b"ret1"]

    _allow_writes(state.conn, "UPDATE")
    _allow_writes(state.conn, "INSERT")
    state.flush()  # space again: the return is stored, re-sent from the database until acked
    assert state.conn.execute("SELECT ret FROM jobs WHERE jid='j1'").fetchone() == (b"ret1",)
    assert state.unacked() == [b"ret1"]
    _refuse_writes(state.conn, "jobs", "UPDATE")
    state.ack("j1")  # an ack that cannot be recorded is kept: j1 is not re-sent
    assert state.unacked() == []
    _allow_writes(state.conn, "UPDATE")
    state.flush()
    assert state.conn.execute("SELECT acked FROM jobs WHERE jid='j1'").fetchone() == (1,)
    assert state.claim("j2", "test.ping", expires=1e12, now=2.0)  # never run: may run now
    state.close()
