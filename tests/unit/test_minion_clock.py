"""The minion's clock seam (no sockets): expiry, timestamps and polls read the injected clock;
and the tasks it starts and does not await (jobs, a poll past its timeout) are kept until they
end, their failures logged."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from minion.beacons.base import Report
from minion.beacons.runner import BeaconManager, Slot
from minion.commands import Commands
from minion.executor import Executor
from minion.functions import BUILTINS
from minion.outbox import Outbox
from minion.state import MinionState
from reactord.protocol import messages as m
from reactord.protocol.keys import Signer

T0 = 1_000_000.0  # 12 January 1970: any real clock is long past it

SIGNER = Signer(Ed25519PrivateKey.generate())


def _command(jid: str, expires: float) -> m.Command:
    payload = m.CommandBody(
        jid=jid,
        id="web01",
        fun="test.ping",
        args=[],
        kwargs={},
        timeout=5.0,
        expires=expires,
        nonce=os.urandom(16),
    ).pack()
    return m.Command(payload=payload, sig=SIGNER.sign(payload))


async def _guard(work: Coroutine[Any, Any, None]) -> None:
    await work


def _commands(
    tmp_path: Path, clock: Callable[[], float], send: Callable[[bytes], Coroutine[Any, Any, None]]
) -> Commands:
    executor = Executor("web01", BUILTINS, {}, workers=1, clock=clock)
    return Commands("web01", MinionState(tmp_path / "minion.db"), executor, send, _guard, clock=clock)


async def _settle(commands: Commands) -> None:
    """Wait (at most 10s) for the tasks the commands started (claimed at the end of the turn
    they came in: one yield)."""
    await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*commands.tasks, return_exceptions=True), 10)


def test_a_command_s_expiry_is_judged_by_the_injected_clock(tmp_path: Path) -> None:
    now = [T0]
    returns: list[m.Return] = []

    async def send(wire: bytes) -> None:
        message = m.decode(wire)
        assert isinstance(message, m.Return)
        returns.append(message)

    commands = _commands(tmp_path, lambda: now[0], send)

    async def receive() -> None:
        # Both long expired by the wall clock; by the minion's clock only the second is.
        commands.on_command(_command("job-valid", T0 + 60), SIGNER.public)
        commands.on_command(_command("job-expired", T0 - 1), SIGNER.public)
        await _settle(commands)

    try:
        asyncio.run(receive())
        assert [(r.jid, r.success, r.started, r.finished) for r in returns] == [("job-valid", True, T0, T0)]
        assert commands.state.ran("job-valid") and not commands.state.ran("job-expired")
        assert commands.tasks == set()

        # Its claim is kept until the command expires, by the same clock, once acknowledged.
        commands.state.ack("job-valid")
        asyncio.run(commands.resend_returns())
        assert commands.state.ran("job-valid")
        now[0] = T0 + 61
        asyncio.run(commands.resend_returns())
        assert not commands.state.ran("job-valid")
    finally:
        commands.executor.cancel_all()
        commands.state.close()


def test_a_job_task_that_fails_is_logged_and_not_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def send(wire: bytes) -> None:
        raise RuntimeError("the socket went away")

    commands = _commands(tmp_path, lambda: T0, send)

    async def receive() -> None:
        commands.on_command(_command("job-1", T0 + 60), SIGNER.public)
        await asyncio.sleep(0)  # claimed and started at the end of the turn it came in
        assert len(commands.tasks) == 1  # kept: the loop holds only a weak reference
        await _settle(commands)

    try:
        with caplog.at_level(logging.ERROR, logger="minion"):
            asyncio.run(receive())
    finally:
        commands.executor.cancel_all()
        commands.state.close()
    assert commands.tasks == set()
    assert [r.getMessage() for r in caplog.records] == ["job job-1 failed: the socket went away"]


def test_outbox_events_are_stamped_by_the_injected_clock(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", "web01", max_events=100, policy="refuse", clock=lambda: T0)
    try:
        outbox.append([("app/deployed", {"version": "1.2"})])
        assert [(row.tag, row.time) for row in outbox.read(0, 10)] == [("minion/web01/app/deployed", T0)]
    finally:
        outbox.close()


class _Once:
    default_interval: ClassVar[float] = 60.0

    def poll(self) -> list[Report]:
        return [Report(None, {"ok": True})]


def test_a_beacon_s_last_poll_is_read_from_the_injected_clock() -> None:
    slot = Slot("once", "once", _Once(), 60.0, False, True, True, 5.0)
    manager = BeaconManager([slot], lambda events: None, clock=lambda: T0)
    asyncio.run(manager.poll(slot))
    assert slot.last_poll == T0 and slot.polls == 1


class _HangsThenFails:
    default_interval: ClassVar[float] = 60.0

    def __init__(self) -> None:
        self.release = threading.Event()

    def poll(self) -> list[Report]:
        self.release.wait(10)
        raise RuntimeError("gave up")


def test_a_poll_that_fails_after_its_timeout_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    beacon = _HangsThenFails()
    slot = Slot("slow", "slow", beacon, 60.0, False, True, True, 0.05)
    manager = BeaconManager([slot], lambda events: None)

    async def scenario() -> None:
        assert await manager.poll(slot) == [] and slot.busy  # timed out; the poll goes on
        beacon.release.set()
        async with asyncio.timeout(10):
            while slot.busy:
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="minion.beacons"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "beacon slow timed out after 0.05s",
        "beacon slow: the poll that timed out failed later: RuntimeError: gave up",
    ]
