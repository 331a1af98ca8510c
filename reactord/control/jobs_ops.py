"""Control operations of jobs: ``run`` (a command on minions), ``jobs.list`` and ``jobs.show``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.batching import parse_batch
from reactord.base.errors import ControlError, TargetError
from reactord.control.args import Args, arg
from reactord.control.interfaces import JobHistory, ResolveTarget
from reactord.protocol.errors import StorageFull
from reactord.protocol.localsock import Stream
from reactord.protocol.messages import MAX_JOB_SECONDS, valid_function_name
from reactord.store.jobstore import return_public

if TYPE_CHECKING:
    from reactord.base.batching import Batch
    from reactord.jobrunner import JobResult, Progress
    from reactord.store.jobstore import JobRecord


class JobControl(Protocol):
    """What starts jobs and follows them to their end (the master's job runner)."""

    def start(
        self,
        minions: list[str],
        fun: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float,
        target: str,
        target_type: str,
        batch: Batch | None = ...,
        origin: str = ...,
    ) -> JobRecord: ...

    def launch(self, job: JobRecord, progress: Progress | None = ...) -> asyncio.Task[JobResult]: ...

    async def follow(self, job: JobRecord) -> JobResult: ...

    async def wait(self, jid: str, timeout: float) -> None: ...


@dataclass(frozen=True, slots=True)
class JobParts:
    """What the job operations reach; a run without ``timeout`` gets ``default_timeout``."""

    runner: JobControl
    history: JobHistory
    resolve_target: ResolveTarget
    default_timeout: float


async def run(parts: JobParts, args: Args) -> Any:
    """Start a job on the minions a target names and answer as asked: at once (``async``: its
    jid), with every return when it ends, or (``progress``) as a stream of reports ending in
    ``done``. The job goes on when the client goes away."""
    target = arg(args, "target", str)
    target_type = arg(args, "target_type", str, "glob")
    fun = arg(args, "fun", str)
    if not valid_function_name(fun):
        raise ControlError(f"bad function name {fun!r} (expected module.function)", "bad_request")
    timeout = _seconds(args, "timeout", parts.default_timeout, zero_ok=False)
    origin = arg(args, "origin", str, "cli")  # who asked: the CLI, or the HTTP API
    if origin not in ("cli", "api"):
        raise ControlError("argument 'origin' is cli or api", "bad_request")
    batch = _batch(args)
    matched = _matched(parts, target, target_type)
    try:
        job = parts.runner.start(
            matched,
            fun,
            arg(args, "args", list, []),
            arg(args, "kwargs", dict, {}),
            timeout=timeout,
            target=target,
            target_type=target_type,
            batch=batch,
            origin=origin,
        )
    except StorageFull as exc:
        raise ControlError(f"the job was not started: {exc}", "failed") from exc
    if arg(args, "async", bool, False):
        parts.runner.launch(job)
        return {"jid": job.jid, "minions": matched, "batch": job.batch}
    if not arg(args, "progress", bool, False):
        return (await parts.runner.follow(job)).public()
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # at most two per minion
    task = parts.runner.launch(job, reports.put_nowait)  # goes on if the client goes away
    return Stream(_progress(job, matched, reports, task))


async def jobs_list(parts: JobParts, args: Args) -> Any:
    recent = parts.history.recent(arg(args, "limit", int, 50))
    counts = parts.history.count_returns([j.jid for j in recent])
    return [{**j.public(), "returned": counts.get(j.jid, 0)} for j in recent]


async def jobs_show(parts: JobParts, args: Args) -> Any:
    """A job with each minion's return: a return, not run (a batch stopped by a failure), no
    return (lost), or None while it runs. ``wait``: up to so many seconds for the job to end."""
    jid = arg(args, "jid", str)
    wait = _seconds(args, "wait", 0.0, zero_ok=True)
    if parts.history.get(jid) is None:
        raise ControlError(f"no job {jid!r}", "not_found")
    if wait:
        await parts.runner.wait(jid, wait)
    job = parts.history.get(jid)
    assert job is not None
    returns = parts.history.returns(jid)
    summary = job.summary or {}

    def shown(minion_id: str) -> dict[str, Any] | None:
        if minion_id in returns:
            return return_public(returns[minion_id])
        if minion_id in summary.get("not_run", []):
            error = f"not run: the batch stopped after {summary.get('stopped_by')} failed"
            return {"success": False, "return": None, "retcode": 1, "error": error, "not_run": True}
        if minion_id in summary.get("no_return", []):
            return {"success": False, "return": None, "retcode": 1, "error": "no return", "lost": True}
        return None  # still running

    return {
        **job.public(),
        "finished": job.summary is not None or all(mid in returns for mid in job.minions),
        "returns": {mid: shown(mid) for mid in job.minions},
    }


def _seconds(args: Args, name: str, default: float, *, zero_ok: bool) -> float:
    """A duration argument: above 0 (``zero_ok``: from 0) up to the longest a job may run."""
    value = float(arg(args, name, (int, float), default))
    if value < 0 or (value == 0 and not zero_ok) or value > MAX_JOB_SECONDS:
        raise ControlError(f"{name} must be between 0 and {MAX_JOB_SECONDS:g} seconds", "bad_request")
    return value


def _batch(args: Args) -> Batch | None:
    """The ``batch`` argument (with ``batch_wait`` and ``failhard``), or None: all at once."""
    if arg(args, "batch", (str, int), None) is None:
        return None
    try:
        return parse_batch(
            args["batch"],
            wait=float(arg(args, "batch_wait", (int, float), 0.0)),
            failhard=arg(args, "failhard", bool, False),
        )
    except ValueError as exc:
        raise ControlError(str(exc), "bad_request") from exc


def _matched(parts: JobParts, target: str, target_type: str) -> list[str]:
    """The minions a job's target names; ``no_match`` when it names none."""
    try:
        matched = parts.resolve_target(target, target_type)
    except TargetError as exc:
        raise ControlError(str(exc), "bad_request") from exc
    if not matched:
        raise ControlError(f"no accepted minion matches {target_type} target {target!r}", "no_match")
    return matched


async def _progress(
    job: JobRecord,
    matched: list[str],
    reports: asyncio.Queue[dict[str, Any]],
    task: asyncio.Task[JobResult],
) -> AsyncIterator[dict[str, Any]]:
    """A run's stream: the job, each report as it comes, then ``done`` with the job's result.

    When the client goes away the pending read is cancelled: the job goes on, this reader
    does not.
    """
    yield {"type": "job", "jid": job.jid, "minions": matched, "batch": job.batch}
    while True:
        getter = asyncio.ensure_future(reports.get())
        try:
            await asyncio.wait([getter, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            got = getter.done()
            if not got:
                getter.cancel()
        if got:
            yield getter.result()
            continue
        while not reports.empty():
            yield reports.get_nowait()
        yield {"type": "done", **task.result().public()}
        return
