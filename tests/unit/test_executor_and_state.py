"""The minion's executor (no sockets) and its replay-defence database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from minion.executor import Executor, wire_safe
from minion.functions import BUILTINS, DEFAULT_ALLOW, allowed
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
