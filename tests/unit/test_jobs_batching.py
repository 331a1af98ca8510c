"""The job dispatcher's batches, summaries and waits, with a scripted link (no sockets).

The link answers each command after a delay chosen per minion, on the test's event loop,
through ``on_return`` as the master's receive loop does; what the tests check is when each
command was sent and what the job recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reactord.base.batching import Batch, parse_batch
from reactord.jobrunner import JobRunner
from reactord.protocol import messages as m
from reactord.protocol.keys import Signer
from reactord.store.database import Database
from reactord.store.jobstore import JobStore
from reactord.store.schema import MIGRATIONS


class ScriptedLink:
    """Answers a command after ``delays[id]`` seconds, with success unless the id is in ``fail``;
    ids in ``offline`` are not connected; ids in ``silent`` never answer."""

    def __init__(
        self,
        delays: dict[str, float],
        *,
        fail: frozenset[str] = frozenset(),
        offline: frozenset[str] = frozenset(),
        silent: frozenset[str] = frozenset(),
    ) -> None:
        self.delays = delays
        self.fail, self.offline, self.silent = set(fail), set(offline), set(silent)
        self.dispatcher: JobRunner | None = None
        self.sent: list[tuple[str, float]] = []  # (id, loop time)
        self.running = 0
        self.most = 0

    def send(self, minion_id: str, message: m.Message) -> bool:
        if minion_id in self.offline:
            return False
        assert isinstance(message, m.Command)
        body = m.CommandBody.unpack(message.payload)
        loop = asyncio.get_running_loop()
        self.sent.append((minion_id, loop.time()))
        if minion_id in self.silent:
            return True
        self.running += 1
        self.most = max(self.most, self.running)
        loop.call_later(self.delays.get(minion_id, 0.0), self._answer, body)
        return True

    def _answer(self, body: m.CommandBody) -> None:
        self.running -= 1
        ok = body.id not in self.fail
        ret = m.Return(
            jid=body.jid, id=body.id, success=ok, retcode=0 if ok else 1, ret=ok, started=1.0, finished=2.0
        )
        assert self.dispatcher is not None
        self.dispatcher.on_return(body.id, ret)


def dispatcher(tmp_path: Path, link: ScriptedLink) -> tuple[JobRunner, JobStore]:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    store = JobStore(db)
    emitted: list[str] = []

    def emit(tag: str, data: dict[str, Any], *, writes: Any = None, **how: Any) -> None:
        emitted.append(tag)
        if writes is not None:  # the job's and the returns' rows, in the event's transaction
            with db.writing() as conn:
                for sql, rows in writes([]):
                    conn.executemany(sql, rows)

    jobs = JobRunner(
        store,
        link,  # type: ignore[arg-type]
        Signer(Ed25519PrivateKey.generate()),
        emit,
        command_ttl=60.0,
    )
    link.dispatcher = jobs
    return jobs, store


IDS = ["m1", "m2", "m3", "m4", "m5"]


def run(jobs: JobRunner, batch: Batch | None, timeout: float = 5.0, progress: Any = None) -> Any:
    async def started_and_followed() -> Any:
        job = jobs.start(
            IDS, "test.ping", [], {}, timeout=timeout, target="m*", target_type="glob", batch=batch
        )
        return await jobs.follow(job, progress)

    return asyncio.run(started_and_followed())


def test_a_batch_of_two_never_runs_more_than_two_and_starts_the_next_on_a_return(tmp_path: Path) -> None:
    link = ScriptedLink({"m1": 0.05, "m2": 0.2, "m3": 0.05, "m4": 0.05, "m5": 0.05})
    jobs, store = dispatcher(tmp_path, link)
    reports: list[dict[str, Any]] = []
    result = run(jobs, parse_batch(2), progress=reports.append)
    assert link.most == 2
    assert [m for m, _ in link.sent] == IDS  # in id order
    sent = dict(link.sent)
    # m3 takes m1's slot (m1 returns first), long before m2 returns
    assert sent["m3"] - sent["m1"] >= 0.05 and sent["m3"] < sent["m2"] + 0.2
    assert result.summary == {
        "minions": 5,
        "succeeded": 5,
        "failed": [],
        "no_return": [],
        "not_run": [],
        "stopped_by": None,
    }
    stored = store.get(result.jid)
    assert stored is not None and stored.summary == result.summary and stored.batch == parse_batch(2).public()
    assert [r["type"] for r in reports].count("started") == 5 and [r["type"] for r in reports].count(
        "return"
    ) == 5


def test_a_percentage_rounds_up_and_batch_wait_keeps_the_slot_empty(tmp_path: Path) -> None:
    link = ScriptedLink({m: 0.01 for m in IDS})
    jobs, _ = dispatcher(tmp_path, link)
    run(jobs, parse_batch("30%", wait=0.1))  # 30% of 5 is 1.5: two at a time
    assert link.most == 2
    times = [t for _, t in link.sent]
    assert times[2] - times[0] >= 0.1  # the third waited for a slot freed 0.1 s after a return


def test_failhard_stops_after_the_first_failure_and_reports_the_rest_not_run(tmp_path: Path) -> None:
    link = ScriptedLink({m: 0.01 for m in IDS}, fail=frozenset({"m2"}))
    jobs, _ = dispatcher(tmp_path, link)
    result = run(jobs, parse_batch(1, failhard=True))
    assert [m for m, _ in link.sent] == ["m1", "m2"]
    assert result.summary["failed"] == ["m2"] and result.summary["not_run"] == ["m3", "m4", "m5"]
    assert result.summary["stopped_by"] == "m2"
    assert result.returns["m4"]["error"] == "not run: the batch stopped after m2 failed"


def test_failhard_counts_a_minion_that_is_not_connected(tmp_path: Path) -> None:
    link = ScriptedLink({m: 0.01 for m in IDS}, offline=frozenset({"m1"}))
    jobs, _ = dispatcher(tmp_path, link)
    result = run(jobs, parse_batch(2, failhard=True))
    assert result.summary["no_return"] == ["m1"] and result.summary["stopped_by"] == "m1"
    assert result.summary["not_run"] == ["m2", "m3", "m4", "m5"] and link.sent == []


def test_without_a_batch_every_minion_is_sent_at_once_and_silence_is_no_return(tmp_path: Path) -> None:
    link = ScriptedLink({m: 0.01 for m in IDS}, silent=frozenset({"m5"}))
    jobs, _ = dispatcher(tmp_path, link)
    result = run(jobs, None, timeout=0.2)
    assert len({round(t, 2) for _, t in link.sent}) == 1 and link.most == 4
    assert result.summary["succeeded"] == 4 and result.summary["no_return"] == ["m5"]
    assert result.returns["m5"] == {
        "success": False,
        "return": None,
        "retcode": 1,
        "error": "no return within 0.2s",
        "lost": True,
    }


def test_wait_follows_a_launched_job_and_a_job_from_before_a_restart(tmp_path: Path) -> None:
    link = ScriptedLink({m: 0.05 for m in IDS})
    jobs, store = dispatcher(tmp_path, link)

    async def scenario() -> None:
        job = jobs.start(IDS, "test.ping", [], {}, timeout=5.0, target="m*", target_type="glob")
        jobs.launch(job)
        assert store.get(job.jid).summary is None  # type: ignore[union-attr]
        await jobs.wait(job.jid, 5.0)
        assert store.get(job.jid).summary["succeeded"] == 5  # type: ignore[union-attr,index]
        # a job whose dispatcher is gone (a restart): wait until its returns are all in
        later = jobs.start(["m1", "m2"], "test.ping", [], {}, timeout=5.0, target="m*", target_type="glob")
        for minion_id in ("m1", "m2"):
            asyncio.get_running_loop().call_later(
                0.05,
                jobs.on_return,
                minion_id,
                m.Return(jid=later.jid, id=minion_id, success=True, retcode=0, ret=True),
            )
        async with asyncio.timeout(5):
            await jobs.wait(later.jid, 5.0)
        assert set(store.returns(later.jid)) == {"m1", "m2"}

    asyncio.run(scenario())


@pytest.mark.parametrize("text", ["0", "0%", "101%", "-1", "x", "1.5", "100001", True, None])
def test_bad_batches_are_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_batch(text)


def test_batch_wait_is_bounded() -> None:
    with pytest.raises(ValueError, match="batch wait"):
        parse_batch(2, wait=float("nan"))
    assert parse_batch(" 25 % ").percent == 25.0 and parse_batch(3).size == 3
