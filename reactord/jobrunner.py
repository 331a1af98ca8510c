"""Jobs: run a function on targeted minions, wait for their returns, store everything.

Each job gets a sortable jid; each targeted minion gets its own command, signed by the
master and bound to that minion's id, with an expiry. Returns are stored when they arrive
(also after the caller stopped waiting) and acknowledged so the minion stops re-sending.

A job may be batched (``Batch``): at most ``size`` (or ``percent`` of the targeted) minions
run at once, the next one starting when one returns (``wait`` seconds later); ``failhard``
stops starting new ones after the first failure. Every job, batched or not, ends with a
summary stored on it (``summarize``): how many succeeded, failed, did not return, or were
never started. A job may also be launched in the background (``launch``, for ``run
--async``); ``wait`` waits for the end of a job, also one started before a restart.

A job started by a rule action names that action. When a stopped master resumes the action,
``resume`` waits for the job's missing returns instead of starting it again: it sends the
command once more (same jid) to the minions that have not returned; a minion runs a jid at
most once, and one that already ran it sends its stored return again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reactord.base.batching import Batch
from reactord.base.stats import Stats
from reactord.protocol import messages as m
from reactord.protocol.errors import ReactordError
from reactord.protocol.ids import new_id
from reactord.protocol.keys import Signer
from reactord.store.database import Writes
from reactord.store.jobstore import JobRecord, JobStore, return_public

log = logging.getLogger("reactord.jobs")


class Emit(Protocol):
    """The master's ``emit``; with ``writes``, those rows go in the event's own transaction
    and a full disk raises ``StorageFull`` (nothing is written) instead of holding the event."""

    def __call__(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        causation: str | None = None,
        depth: int = 0,
        writes: Callable[[list[Any]], Writes] | None = None,
    ) -> Any: ...


def _failure(error: str, *, lost: bool = False) -> dict[str, Any]:
    """A return the master makes up for a minion that did not (or could not) answer."""
    out: dict[str, Any] = {"success": False, "return": None, "retcode": 1, "error": error}
    if lost:
        out["lost"] = True  # no return came: not a failure the minion reported
    return out


#: Seconds the master waits past a job's timeout for the minion's own timeout report.
RETURN_GRACE = 1.0


#: A progress report of a running job: {"type": "started" | "return", "id": ..., ...}.
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class JobResult:
    jid: str
    minions: list[str]
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.minions) and all(r.get("success") for r in self.returns.values())

    def public(self) -> dict[str, Any]:
        return {"jid": self.jid, "minions": self.minions, "returns": self.returns, "summary": self.summary}


def summarize(
    minions: list[str], returns: dict[str, dict[str, Any]], not_run: list[str], stopped_by: str | None
) -> dict[str, Any]:
    """How a job ended: counts, and the ids that failed, did not return or never started."""
    failed = [
        m for m in minions if m in returns and not returns[m].get("success") and not returns[m].get("lost")
    ]
    lost = [m for m in minions if m in returns and returns[m].get("lost") and m not in not_run]
    return {
        "minions": len(minions),
        "succeeded": sum(1 for m in minions if returns.get(m, {}).get("success")),
        "failed": failed,
        "no_return": lost,
        "not_run": not_run,
        "stopped_by": stopped_by,
    }


class _Following:
    """One job being followed: the minions still to start, those running (each with its
    deadline), the results so far, the slots a ``--batch-wait`` keeps empty for a while, and
    the minion whose failure stopped a ``--failhard`` batch."""

    def __init__(
        self, runner: JobRunner, job: JobRecord, results: dict[str, dict[str, Any]], report: Progress
    ) -> None:
        self.runner, self.job, self.results, self.report = runner, job, results, report
        self.todo = [mid for mid in job.minions if mid not in results]
        self.batch = Batch.from_public(job.batch) if job.batch else None
        self.slots = self.batch.slots(len(job.minions)) if self.batch else len(self.todo)
        self.loop = asyncio.get_running_loop()
        self.waiters: dict[str, asyncio.Future[m.Return]] = {}
        self.deadlines: dict[str, float] = {}
        self.freed: list[float] = []  # when slots emptied by a return may take the next minion
        self.stopped_by: str | None = None

    def start_what_fits(self, now: float) -> None:
        """Send the command to as many of the minions still to start as the free slots allow."""
        self.freed = [t for t in self.freed if t > now]
        while self.todo and self.stopped_by is None and len(self.waiters) + len(self.freed) < self.slots:
            minion_id = self.todo.pop(0)
            if self.runner._send(self.job, minion_id):
                self.waiters[minion_id] = self.loop.create_future()
                self.deadlines[minion_id] = now + self.job.timeout + RETURN_GRACE
                self.report({"type": "started", "id": minion_id, "time": self.runner.clock()})
            else:
                self._done(minion_id, _failure("minion is not connected", lost=True), now)

    def wait_from(self, now: float) -> float:
        """How long to wait for a return before a deadline passes or a freed slot opens."""
        until = min(self.deadlines[mid] for mid in self.waiters)
        if self.freed and self.todo and self.stopped_by is None:
            until = min(until, min(self.freed))
        return max(0.0, until - now)

    def take_done(self, now: float) -> None:
        """Record the returns that came and the minions whose deadline passed."""
        for minion_id in [mid for mid, f in self.waiters.items() if f.done() or self.deadlines[mid] <= now]:
            future = self.waiters.pop(minion_id)
            if future.done() and not future.cancelled():
                self._done(minion_id, return_public(future.result()), now)
            else:
                future.cancel()
                self._done(minion_id, _failure(f"no return within {self.job.timeout:g}s", lost=True), now)

    def _done(self, minion_id: str, result: dict[str, Any], now: float) -> None:
        self.results[minion_id] = result
        self.report({"type": "return", "id": minion_id, "return": result})
        if self.batch is None:
            return
        if self.batch.wait and self.todo and minion_id in self.deadlines:
            self.freed.append(now + self.batch.wait)
        if self.batch.failhard and self.stopped_by is None and not result["success"]:
            self.stopped_by = minion_id


class Sender(Protocol):
    """Where commands go: the master's link (or, in cluster mode, the master holding the minion)."""

    def send(self, minion_id: str, message: m.Message) -> bool: ...


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        link: Sender,
        signer: Signer,
        emit: Emit,
        *,
        stats: Stats | None = None,
        command_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.link = link
        self.signer = signer
        self.stats = stats or Stats()
        self.emit = emit
        self.command_ttl = command_ttl
        self.clock = clock
        self._waiting: dict[str, dict[str, asyncio.Future[m.Return]]] = {}
        self._tasks: dict[str, asyncio.Task[JobResult]] = {}  # jobs running in the background
        self._returned: dict[str, asyncio.Event] = {}  # jids someone waits on (``wait``)
        self._listeners: dict[str, int] = {}  # how many wait on each of them

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
        origin: str = "cli",
        causation: str | None = None,
        depth: int = 0,
        action: str | None = None,
        batch: Batch | None = None,
    ) -> JobRecord:
        """Record a new job (nothing is sent yet: ``follow`` sends and collects).

        Raises ``StorageFull`` when the job cannot be recorded.
        """
        now = self.clock()
        job = JobRecord(
            new_id(now),
            fun,
            args,
            kwargs,
            target,
            target_type,
            minions,
            now,
            timeout,
            origin,
            causation,
            depth,
            action,
            None if batch is None else batch.public(),
        )
        # the job's row and its event in one transaction, before any command is sent
        self.emit(
            f"reactor/job/{job.jid}/new",
            {
                "jid": job.jid,
                "fun": fun,
                "args": args,
                "kwargs": kwargs,
                "target": target,
                "tgt_type": target_type,
                "timeout": timeout,
                "minions": minions,
                "origin": origin,
                **({"batch": job.batch} if job.batch else {}),
            },
            causation=causation,
            depth=depth,
            writes=lambda events: self.store.add_writes(job),
        )
        self.stats.incr("jobs.started")
        return job

    def launch(self, job: JobRecord, progress: Progress | None = None) -> asyncio.Task[JobResult]:
        """Follow ``job`` in the background (``run --async``, or a CLI run whose client may go)."""
        task = asyncio.create_task(self.follow(job, progress), name=f"job-{job.jid}")
        self._tasks[job.jid] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.jid, None))
        return task

    def latest_for(self, action_id: str) -> JobRecord | None:
        return self.store.latest_for(action_id)

    async def resume(self, job: JobRecord) -> JobResult:
        """Wait for the returns a job started before the master stopped still misses.

        A batched job goes on with its batches; otherwise the command is sent again (same
        jid) to the minions that have not returned, while it can still be carried out.
        """
        stored = {mid: return_public(r) for mid, r in self.store.returns(job.jid).items()}
        if job.batch is None and self.clock() >= job.created + job.timeout + self.command_ttl:
            missing = [mid for mid in job.minions if mid not in stored]
            for minion_id in missing:
                stored[minion_id] = _failure("no return: the master stopped while the job ran", lost=True)
            return self._end(job, stored, [], None)
        return await self.follow(job, None, stored)

    async def follow(
        self,
        job: JobRecord,
        progress: Progress | None = None,
        results: dict[str, dict[str, Any]] | None = None,
    ) -> JobResult:
        """Send the job's command to its minions (those without a result yet), batch by batch
        if it is batched, and wait up to its timeout for each return; store its summary."""
        loop = asyncio.get_running_loop()
        run = _Following(self, job, dict(results or {}), progress or (lambda item: None))
        self._waiting[job.jid] = run.waiters
        try:
            while run.todo or run.waiters:
                now = loop.time()
                run.start_what_fits(now)
                if run.stopped_by is not None and not run.waiters:
                    break
                if not run.waiters:
                    if run.todo and run.freed:
                        await asyncio.sleep(min(run.freed) - now)  # --batch-wait: the slot stays empty
                    continue
                await asyncio.wait(
                    run.waiters.values(), timeout=run.wait_from(now), return_when="FIRST_COMPLETED"
                )
                run.take_done(loop.time())
        finally:
            self._waiting.pop(job.jid, None)
            for future in run.waiters.values():
                future.cancel()
        return self._end(job, run.results, run.todo, run.stopped_by)

    def _send(self, job: JobRecord, minion_id: str) -> bool:
        now = self.clock()
        body = m.CommandBody(
            jid=job.jid,
            id=minion_id,
            fun=job.fun,
            args=job.args,
            kwargs=job.kwargs,
            timeout=job.timeout,
            expires=max(now, job.created) + job.timeout + self.command_ttl,
            nonce=os.urandom(16),
        )
        payload = body.pack()
        return self.link.send(minion_id, m.Command(payload=payload, sig=self.signer.sign(payload)))

    def _end(
        self, job: JobRecord, results: dict[str, dict[str, Any]], not_run: list[str], stopped_by: str | None
    ) -> JobResult:
        for minion_id in not_run:
            results[minion_id] = _failure(f"not run: the batch stopped after {stopped_by} failed", lost=True)
        summary = summarize(job.minions, results, list(not_run), stopped_by)
        try:
            self.store.finish(job.jid, summary)
        except ReactordError as exc:  # a full disk: the returns are stored; only the summary is not
            log.warning("job %s: its summary could not be stored: %s", job.jid, exc)
        self._wake(job.jid)
        return JobResult(job.jid, job.minions, {mid: results[mid] for mid in job.minions}, summary)

    async def wait(self, jid: str, timeout: float) -> None:
        """Wait up to ``timeout`` for a job to end: its background task, or (a job started
        before a restart) all its returns, or its last possible return time."""
        task = self._tasks.get(jid)
        if task is not None:
            await asyncio.wait([task], timeout=timeout)
            return
        end = asyncio.get_running_loop().time() + timeout
        while True:
            job = self.store.get(jid)
            if job is None or job.summary is not None:
                return
            returned = self.store.returns(jid)
            if all(mid in returned for mid in job.minions):
                return
            last = job.created + job.timeout + self.command_ttl  # no minion runs it later
            left = min(end - asyncio.get_running_loop().time(), last - self.clock())
            if left <= 0:
                return
            event = self._returned.setdefault(jid, asyncio.Event())
            self._listeners[jid] = self._listeners.get(jid, 0) + 1
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                return
            finally:
                self._listeners[jid] -= 1
                if not self._listeners[jid]:
                    del self._listeners[jid]
                    self._returned.pop(jid, None)

    def _wake(self, jid: str) -> None:
        event = self._returned.pop(jid, None)  # the next wait for this job takes a new one
        if event is not None:
            event.set()

    def on_return(self, minion_id: str, ret: m.Return) -> bool:
        """Store a return from an authenticated minion; False if it must not be acknowledged."""
        if ret.id != minion_id:
            log.warning("dropped a return from %s claiming to be %s", minion_id, ret.id)
            return False
        job = self.store.get(ret.jid)
        if job is None or minion_id not in job.minions:
            log.warning("dropped a return from %s for a job it was not sent: %s", minion_id, ret.jid)
            return False
        if not self.store.has_return(ret.jid, minion_id):  # (a minion sends it again until acked)
            received = self.clock()
            self.emit(  # the return's row and its event in one transaction
                f"reactor/job/{ret.jid}/ret/{minion_id}",
                {"jid": ret.jid, "id": minion_id, "fun": job.fun, **return_public(ret)},
                causation=job.causation,
                depth=job.depth,
                writes=lambda events: self.store.return_writes(ret, received),
            )
            self._wake(ret.jid)
        future = self._waiting.get(ret.jid, {}).get(minion_id)
        if future is not None and not future.done():
            future.set_result(ret)
        return True
