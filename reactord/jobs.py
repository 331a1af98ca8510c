"""Jobs: run a function on targeted minions, wait for their returns, store everything.

Each job gets a sortable jid; each targeted minion gets its own command, signed by the
master and bound to that minion's id, with an expiry. Returns are stored when they arrive
(also after the caller stopped waiting) and acknowledged so the minion stops re-sending.

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

from reactord.link import CommandLink
from reactord.protocol import messages as m
from reactord.protocol.ids import new_id
from reactord.protocol.keys import Signer
from reactord.stats import Stats
from reactord.store.jobs import JobRecord, JobStore, return_public

log = logging.getLogger("reactord.jobs")


class Emit(Protocol):
    def __call__(
        self, tag: str, data: dict[str, Any], *, causation: str | None = None, depth: int = 0
    ) -> Any: ...


def _failure(error: str) -> dict[str, Any]:
    return {"success": False, "return": None, "retcode": 1, "error": error}


#: Seconds the master waits past a job's timeout for the minion's own timeout report.
RETURN_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class JobResult:
    jid: str
    minions: list[str]
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.minions) and all(r.get("success") for r in self.returns.values())

    def public(self) -> dict[str, Any]:
        return {"jid": self.jid, "minions": self.minions, "returns": self.returns}


class JobDispatcher:
    def __init__(
        self,
        store: JobStore,
        link: CommandLink,
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

    async def run(
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
    ) -> JobResult:
        """Send ``fun`` to each minion and wait up to ``timeout`` for all returns.

        Raises ``StorageFull`` (nothing was sent) when the job cannot be recorded.
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
        )
        self.store.add(job)
        self.stats.incr("jobs.started")
        self.emit(
            f"reactor/job/{job.jid}/new",
            {"jid": job.jid, "fun": fun, "args": args, "minions": minions, "origin": origin},
            causation=causation,
            depth=depth,
        )
        return await self._collect(job, minions, {}, timeout)

    def latest_for(self, action_id: str) -> JobRecord | None:
        return self.store.latest_for(action_id)

    async def resume(self, job: JobRecord) -> JobResult:
        """Wait for the returns a job started before the master stopped still misses."""
        stored = {mid: return_public(r) for mid, r in self.store.returns(job.jid).items()}
        missing = [mid for mid in job.minions if mid not in stored]
        results: dict[str, dict[str, Any]] = dict(stored)
        if missing and self.clock() < job.created + job.timeout + self.command_ttl:
            return await self._collect(job, missing, results, job.timeout)
        for minion_id in missing:
            results[minion_id] = _failure("no return: the master stopped while the job ran")
        return JobResult(job.jid, job.minions, {mid: results[mid] for mid in job.minions})

    async def _collect(
        self, job: JobRecord, minions: list[str], results: dict[str, dict[str, Any]], timeout: float
    ) -> JobResult:
        """Send the job's command to ``minions`` and wait up to ``timeout`` for their returns."""
        loop = asyncio.get_running_loop()
        waiters = {mid: loop.create_future() for mid in minions}
        self._waiting[job.jid] = waiters
        try:
            for minion_id in minions:
                body = m.CommandBody(
                    jid=job.jid,
                    id=minion_id,
                    fun=job.fun,
                    args=job.args,
                    kwargs=job.kwargs,
                    timeout=job.timeout,
                    expires=job.created + job.timeout + self.command_ttl,
                    nonce=os.urandom(16),
                )
                payload = body.pack()
                command = m.Command(payload=payload, sig=self.signer.sign(payload))
                if not self.link.send(minion_id, command):
                    results[minion_id] = _failure("minion is not connected")
                    waiters.pop(minion_id).cancel()
            if waiters:
                # the minion enforces ``timeout`` and reports it; wait a little longer for that
                await asyncio.wait(waiters.values(), timeout=timeout + RETURN_GRACE)
            for minion_id, future in waiters.items():
                if future.done() and not future.cancelled():
                    results[minion_id] = return_public(future.result())
                else:
                    results[minion_id] = _failure(f"no return within {timeout:g}s")
        finally:
            self._waiting.pop(job.jid, None)
            for future in waiters.values():
                future.cancel()
        return JobResult(job.jid, job.minions, {mid: results[mid] for mid in job.minions})

    def on_return(self, minion_id: str, ret: m.Return) -> bool:
        """Store a return from an authenticated minion; False if it must not be acknowledged."""
        if ret.id != minion_id:
            log.warning("dropped a return from %s claiming to be %s", minion_id, ret.id)
            return False
        job = self.store.get(ret.jid)
        if job is None or minion_id not in job.minions:
            log.warning("dropped a return from %s for a job it was not sent: %s", minion_id, ret.jid)
            return False
        if self.store.add_return(ret, self.clock()):
            self.emit(
                f"reactor/job/{ret.jid}/ret/{minion_id}",
                {"jid": ret.jid, "id": minion_id, "fun": job.fun, **return_public(ret)},
                causation=job.causation,
                depth=job.depth,
            )
        future = self._waiting.get(ret.jid, {}).get(minion_id)
        if future is not None and not future.done():
            future.set_result(ret)
        return True
