"""Replays: a captured command sent again, an expired or forged one, an event sent twice."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reactord.base.config import load_master_config
from reactord.master import Master
from reactord.protocol import messages as m
from reactord.protocol.keys import Signer
from tests.security.helpers import curve_socket, minion_keys
from tests.support import Daemon, MasterThread, Setup, wait_until


@pytest.fixture
def live(setup: Setup) -> Iterator[tuple[Setup, MasterThread, Daemon, list[m.Command]]]:
    """An in-process master (so the test can capture and re-send what it sends) and a real minion."""
    runner = MasterThread(Master(load_master_config(str(setup.master_yaml))))
    runner.start()
    sent: list[m.Command] = []
    link = runner.master.link
    original = link.send

    def recording(minion_id: str, message: m.Message) -> bool:
        if isinstance(message, m.Command):
            sent.append(message)
        return original(minion_id, message)

    link.send = recording  # type: ignore[method-assign]
    minion = setup.start_minion("web01")
    try:
        wait_until(lambda: runner.master.keystore.state_of("web01") == "pending", 20, "web01 pending")
        runner.run_sync(runner.master.nodes.accept, "web01")
        wait_until(lambda: _echo(runner, "ready")["success"], 20, "web01 to run jobs")
        yield setup, runner, minion, sent
    finally:
        runner.stop()


def _echo(runner: MasterThread, text: str) -> dict[str, Any]:
    jobs = runner.master.jobs

    async def echo() -> Any:
        job = jobs.start(["web01"], "test.echo", [text], {}, timeout=5, target="web01", target_type="glob")
        return await jobs.follow(job)

    return runner.call(echo()).returns["web01"]


def _resend(runner: MasterThread, command: m.Command) -> None:
    assert runner.run_sync(runner.master.link.send, "web01", command) is True


def _signed(runner: MasterThread, signer: Signer | None = None, **changes: Any) -> m.Command:
    fields: dict[str, Any] = {
        "jid": "01JREPLAY" + os.urandom(4).hex().upper(),
        "id": "web01",
        "fun": "test.echo",
        "args": ["forged"],
        "kwargs": {},
        "timeout": 5.0,
        "expires": time.time() + 60,
        "nonce": os.urandom(16),
    }
    fields.update(changes)
    payload = m.CommandBody(**fields).pack()
    return m.Command(payload=payload, sig=(signer or runner.master.signer).sign(payload))


def test_a_captured_command_sent_again_is_not_run_twice_even_after_restarts_and_many_jobs(
    live: tuple[Setup, MasterThread, Daemon, list[m.Command]],
) -> None:
    setup, runner, minion, sent = live
    assert _echo(runner, "once")["return"] == "once"
    captured = sent[-1]
    jid = m.CommandBody.unpack(captured.payload).jid
    assert setup.minion_jobs("web01").count(jid) == 1

    refusal = f"refused command {jid}: already run (replay)"

    def refused_again(before: int) -> None:
        _resend(runner, captured)
        wait_until(lambda: minion.output().count(refusal) == before + 1, 10, "one more refusal")

    refused_again(0)
    minion.stop()
    setup.daemons.remove(minion)
    minion = setup.start_minion("web01")  # the same log file: count what is logged after the restart
    wait_until(lambda: _echo(runner, "back")["success"], 20, "web01 back")
    refused_again(1)
    for n in range(30):
        assert _echo(runner, f"job {n}")["success"]
    refused_again(2)
    assert setup.minion_jobs("web01").count(jid) == 1
    assert len(runner.master.job_store.returns(jid)) == 1


def test_expired_foreign_and_forged_commands_are_refused(
    live: tuple[Setup, MasterThread, Daemon, list[m.Command]],
) -> None:
    setup, runner, minion, _ = live
    expired = _signed(runner, expires=time.time() - 1)
    foreign = _signed(runner, id="web02")
    forged = _signed(runner, Signer(Ed25519PrivateKey.generate()))
    for command in (expired, foreign, forged):
        _resend(runner, command)
    wait_until(
        lambda: (
            "expired" in minion.output()
            and "it is for web02" in minion.output()
            and "signature does not verify" in minion.output()
        ),
        10,
        "three refusals",
    )
    ran = setup.minion_jobs("web01")
    for command in (expired, foreign):
        assert m.CommandBody.unpack(command.payload).jid not in ran


def test_an_event_sent_again_is_not_processed_twice(
    live: tuple[Setup, MasterThread, Daemon, list[m.Command]],
) -> None:
    setup, runner, _, _ = live
    assert setup.send("web01", "app/once").returncode == 0
    wait_until(
        lambda: (
            runner.master.event_log.count()
            and any(e.tag == "minion/web01/app/once" for e in runner.run_sync(_all, runner))
        ),
        20,
        "the event",
    )
    with sqlite3.connect(setup.root / "state" / "web01" / "outbox.db") as conn:
        epoch = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
    stats = runner.master.stats
    duplicates = stats.get("events.duplicate")
    replay = m.EventBatch(epoch=epoch, base=1, events=[[1, "minion/web01/app/once", time.time(), {}, None]])
    ctx = zmq.Context()
    pub = curve_socket(ctx, zmq.PUB, setup, minion_keys(setup, "web01"), setup.ports[0])
    try:
        wait_until(
            lambda: (pub.send(replay.to_wire()), stats.get("events.duplicate") > duplicates)[1],
            20,
            "the duplicate to be seen",
        )
    finally:
        pub.close()
        ctx.term()
    assert [e.tag for e in runner.run_sync(_all, runner)].count("minion/web01/app/once") == 1


def _all(runner: MasterThread) -> list[Any]:
    from reactord.store.eventlog import EventQuery

    return runner.master.event_log.query(EventQuery(limit=0))
