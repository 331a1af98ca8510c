"""Job operations over a scripted runner: what ``run`` refuses, its three kinds of answer, and
how ``jobs.show`` tells a return from a minion not run, lost or still running."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import pytest

from reactord.base.errors import ControlError, TargetError
from reactord.control.jobs_ops import JobParts, jobs_list, jobs_show, run
from reactord.jobrunner import JobResult, Progress
from reactord.protocol.errors import StorageFull
from reactord.protocol.localsock import Stream
from reactord.protocol.messages import Return
from reactord.store.jobstore import JobRecord


class Jobs:
    """A job runner and its history in one: a started job is recorded; following it reports
    each minion as started, then ends it with a success for each."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.stored: dict[str, dict[str, Return]] = {}
        self.full = False
        self.launched: list[str] = []
        self.waited: float | None = None

    def start(
        self, minions: list[str], fun: str, args: list[Any], kwargs: dict[str, Any], **how: Any
    ) -> JobRecord:
        if self.full:
            raise StorageFull("master.db", "database or disk is full")
        batch = how["batch"].public() if how["batch"] else None
        jid = f"j{len(self.jobs)}"
        job = JobRecord(
            jid, fun, args, kwargs, how["target"], how["target_type"], minions, 0.0, how["timeout"], "cli"
        )
        self.jobs[jid] = replace(job, batch=batch)
        return self.jobs[jid]

    async def follow(self, job: JobRecord, progress: Progress | None = None) -> JobResult:
        for minion_id in job.minions:
            if progress is not None:
                progress({"type": "started", "id": minion_id})
            await asyncio.sleep(0)
        return JobResult(job.jid, job.minions, {m: {"success": True} for m in job.minions})

    def launch(self, job: JobRecord, progress: Progress | None = None) -> asyncio.Task[JobResult]:
        self.launched.append(job.jid)
        return asyncio.ensure_future(self.follow(job, progress))

    async def wait(self, jid: str, timeout: float) -> None:
        self.waited = timeout

    def get(self, jid: str) -> JobRecord | None:
        return self.jobs.get(jid)

    def recent(self, limit: int = 50) -> list[JobRecord]:
        return list(self.jobs.values())[-limit:]

    def count_returns(self, jids: list[str]) -> dict[str, int]:
        return {j: len(self.stored.get(j, {})) for j in jids}

    def returns(self, jid: str) -> dict[str, Return]:
        return self.stored.get(jid, {})

    def caused_by(self, event_id: str) -> list[JobRecord]:
        return []


def resolve(target: str, target_type: str) -> list[str]:
    if target_type == "bogus":
        raise TargetError("unknown target type 'bogus'")
    return [m for m in ("web01", "web02", "db01") if m.startswith(target.rstrip("*"))]


def call(op: Any, jobs: Jobs, **args: Any) -> Any:
    """The operation's answer (a stream read to its end); a launched job has ended."""

    async def go() -> Any:
        answer = await op(
            JobParts(runner=jobs, history=jobs, resolve_target=resolve, default_timeout=30.0), args
        )
        if isinstance(answer, Stream):
            return [item async for item in answer.items]
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))
        return answer

    return asyncio.run(go())


PING = {"target": "*", "fun": "test.ping"}


@pytest.mark.parametrize(
    "args, code, message",
    [
        ({"fun": "test.ping"}, "bad_request", "missing argument 'target'"),
        ({**PING, "fun": "ping"}, "bad_request", "bad function name 'ping' (expected module.function)"),
        ({**PING, "timeout": 0}, "bad_request", "timeout must be between 0 and 604800 seconds"),
        ({**PING, "timeout": 10**9}, "bad_request", "timeout must be between 0 and 604800 seconds"),
        ({**PING, "batch": True}, "bad_request", "argument 'batch' must be str or int"),
        ({**PING, "target_type": "bogus"}, "bad_request", "unknown target type 'bogus'"),
        ({**PING, "target": "mail*"}, "no_match", "no accepted minion matches glob target 'mail*'"),
    ],
)
def test_run_refuses_before_it_starts_anything(args: dict[str, Any], code: str, message: str) -> None:
    jobs = Jobs()
    with pytest.raises(ControlError, match=re.escape(message)) as caught:
        call(run, jobs, **args)
    assert caught.value.code == code
    assert jobs.jobs == {}


def test_a_job_the_database_cannot_record_is_not_started() -> None:
    jobs = Jobs()
    jobs.full = True
    with pytest.raises(
        ControlError, match=re.escape("the job was not started: master.db: database or disk is full")
    ) as caught:
        call(run, jobs, **PING)
    assert caught.value.code == "failed"


def test_run_answers_at_once_when_the_job_ends_or_as_a_stream_of_reports() -> None:
    jobs = Jobs()
    assert call(run, jobs, **{**PING, "target": "web*", "batch": 1, "async": True}) == {
        "jid": "j0",
        "minions": ["web01", "web02"],
        "batch": {"size": 1, "percent": 0.0, "wait": 0.0, "failhard": False},
    }
    assert jobs.launched == ["j0"]
    ended = call(run, jobs, **{**PING, "target": "db*"})
    assert ended["returns"] == {"db01": {"success": True}}
    assert jobs.jobs["j1"].timeout == 30.0  # the master's job_timeout
    streamed = call(run, jobs, **{**PING, "target": "web*", "progress": True})
    assert [item["type"] for item in streamed] == ["job", "started", "started", "done"]
    assert streamed[-1]["returns"] == {"web01": {"success": True}, "web02": {"success": True}}


def test_jobs_show_tells_a_return_from_not_run_lost_and_running() -> None:
    jobs = Jobs()
    job = jobs.start(
        ["a", "b", "c", "d"], "test.ping", [], {}, target="*", target_type="glob", timeout=5, batch=None
    )
    jobs.jobs[job.jid] = replace(job, summary={"not_run": ["b"], "stopped_by": "a", "no_return": ["c"]})
    jobs.stored[job.jid] = {"a": Return(jid=job.jid, id="a", success=False, retcode=2, ret="boom")}
    shown = call(jobs_show, jobs, jid=job.jid, wait=2)
    assert jobs.waited == 2
    assert shown["finished"] is True
    assert shown["returns"]["a"]["retcode"] == 2
    assert shown["returns"]["b"]["error"] == "not run: the batch stopped after a failed"
    assert shown["returns"]["c"] == {
        "success": False,
        "return": None,
        "retcode": 1,
        "error": "no return",
        "lost": True,
    }
    assert shown["returns"]["d"] is None
    assert call(jobs_list, jobs)[0]["returned"] == 1


def test_jobs_show_refuses_an_unknown_job_and_a_wait_out_of_range() -> None:
    with pytest.raises(ControlError, match="no job 'j9'") as caught:
        call(jobs_show, Jobs(), jid="j9")
    assert caught.value.code == "not_found"
    with pytest.raises(ControlError, match="wait must be between 0 and") as caught:
        call(jobs_show, Jobs(), jid="j9", wait=-1)
    assert caught.value.code == "bad_request"
