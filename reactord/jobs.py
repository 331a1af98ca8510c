"""Jobs: run a function on targeted minions, wait for their returns, store everything.

Each job gets a sortable jid; each targeted minion gets its own command, signed by the
master and bound to that minion's id, with an expiry. Returns are stored when they arrive
(also after the caller stopped waiting) and acknowledged so the minion stops re-sending.
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
    ) -> JobResult:
        """Send ``fun`` to each minion and wait up to ``timeout`` for all returns."""
        now = self.clock()
        jid = new_id(now)
        self.stats.incr("jobs.started")
        self.store.add(
            JobRecord(
                jid, fun, args, kwargs, target, target_type, minions, now, timeout, origin, causation, depth
            )
        )
        self.emit(
            f"reactor/job/{jid}/new",
            {"jid": jid, "fun": fun, "args": args, "minions": minions, "origin": origin},
            causation=causation,
            depth=depth,
        )
        loop = asyncio.get_running_loop()
        waiters = {mid: loop.create_future() for mid in minions}
        self._waiting[jid] = waiters
        results: dict[str, dict[str, Any]] = {}
        try:
            for minion_id in minions:
                body = m.CommandBody(
                    jid=jid,
                    id=minion_id,
                    fun=fun,
                    args=args,
                    kwargs=kwargs,
                    timeout=timeout,
                    expires=now + timeout + self.command_ttl,
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
            self._waiting.pop(jid, None)
            for future in waiters.values():
                future.cancel()
        return JobResult(jid, minions, {mid: results[mid] for mid in minions})

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


def _failure(error: str) -> dict[str, Any]:
    return {"success": False, "return": None, "retcode": 1, "error": error}
