"""The master's commands on the minion: verified, claimed before they run, returns until acknowledged.

A command runs only when its signature verifies against the pinned signing key, it names this
minion, it has not expired, and its jid is claimed on disk first: a jid runs at most once,
whatever is replayed or re-sent. A claim that cannot be written (a full disk) refuses the
command with an error return instead of running it unrecorded. A return is sent as soon as
the job ends, stored in the same turn (in memory when the disk is full), and re-sent with
every heartbeat until the master acknowledges it.

Commands that arrive together (in one turn of the event loop: a burst) are claimed in one
transaction, and returns of jobs that end together are stored in one: a sync to disk per
turn, not per job, and still before anything runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from minion.executor import Executor
from minion.state import MinionState
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, SignatureError, StorageFull
from reactord.protocol.keys import verify_signature

log = logging.getLogger("minion")

#: Sends one wire message to the master (nothing when not connected).
Send = Callable[[bytes], Coroutine[Any, Any, None]]
#: Runs one of the agent's tasks so that a damaged state file stops the minion.
Guard = Callable[[Coroutine[Any, Any, None]], Coroutine[Any, Any, None]]


class Commands:
    def __init__(
        self,
        minion_id: str,
        state: MinionState,
        executor: Executor,
        send: Send,
        guard: Guard,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.minion_id = minion_id
        self.state = state
        self.executor = executor
        self.send = send
        self.guard = guard
        self.clock = clock  # wall time: a command's expiry is the master's wall time
        # The loop keeps only a weak reference to a task: the jobs and sends started here are
        # kept until they end, so none is collected mid-way and each failure is logged.
        self.tasks: set[asyncio.Task[None]] = set()
        self._to_claim: list[m.CommandBody] = []  # checked, claimed at the end of this turn
        self._to_store: list[tuple[str, bytes, asyncio.Future[None]]] = []  # returns to store, then send

    def on_command(self, command: m.Command, signing_key: bytes) -> None:
        """Check a command from the master and start it, or log why it is refused."""
        try:
            verify_signature(signing_key, command.sig, command.payload)
            body = m.CommandBody.unpack(command.payload)
        except (SignatureError, DecodeError) as exc:
            log.error("refused a command: %s", exc)
            return
        now = self.clock()
        if body.id != self.minion_id:
            log.error("refused command %s: it is for %s", body.jid, body.id, extra={"jid": body.jid})
            return
        if body.expires < now:
            log.error("refused command %s: expired", body.jid, extra={"jid": body.jid})
            return
        if not self._to_claim:
            asyncio.get_running_loop().call_soon(self._claim_and_start)
        self._to_claim.append(body)

    def _claim_and_start(self) -> None:
        """Claim the commands of this turn in one transaction; start those claimed."""
        bodies, self._to_claim = self._to_claim, []
        try:
            claimed = self.state.claim_many([(b.jid, b.fun, b.expires) for b in bodies], self.clock())
        except StorageFull:
            for body in bodies:
                self._refuse_unclaimed(body)
            return
        seen: set[str] = set()
        for body, ok in zip(bodies, claimed, strict=True):
            if not ok or body.jid in seen:  # (the same command twice in one turn: claimed once)
                log.warning("refused command %s: already run (replay)", body.jid, extra={"jid": body.jid})
                continue
            seen.add(body.jid)
            log.info("running %s (job %s)", body.fun, body.jid, extra={"jid": body.jid})
            self._start(self.guard(self._run(body)), f"job {body.jid}")

    def _refuse_unclaimed(self, body: m.CommandBody) -> None:
        """A job runs only once its claim is on disk (a jid runs at most once): refuse it, and say why."""
        log.error(
            "refused command %s (%s): cannot write %s: disk full; not run",
            body.jid,
            body.fun,
            self.state.path,
            extra={"jid": body.jid},
        )
        self.executor.counts["failed"] += 1
        now = self.clock()
        ret = m.Return(
            jid=body.jid,
            id=self.minion_id,
            success=False,
            retcode=1,
            ret=None,
            error=f"not run: cannot write {self.state.path}: disk full (a job is recorded before it runs)",
            started=now,
            finished=now,
        )
        wire = ret.to_wire()
        self.state.store_return(body.jid, wire)  # no claim to store it with: kept in memory until acked
        self._start(self.send(wire), f"refusal of {body.jid}")

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed: %s", task.get_name(), exc, exc_info=exc)

    async def _run(self, body: m.CommandBody) -> None:
        ret = await self.executor.run(body)
        await self._send_return(body.jid, ret.to_wire())

    async def _send_return(self, jid: str, wire: bytes) -> None:
        """Send a return and store it (with the others of this turn, once this one is on its
        way: the sync to disk no longer delays it); it is re-sent (from disk, or from memory
        on a full disk) until acknowledged. A crash between the send and the sync loses the
        return if it had not reached the master yet; the master then ends the job at its
        timeout, as for a crash while the job runs (the claim keeps the jid from running
        again). An acknowledgement that comes first is harmless: the return is then stored
        as acknowledged."""
        stored = asyncio.get_running_loop().create_future()
        if not self._to_store:
            asyncio.get_running_loop().call_soon(self._store_returns)
        self._to_store.append((jid, wire, stored))
        await self.send(wire)
        await stored  # a damaged state file fails the job's task here (the guard stops the minion)

    def _store_returns(self) -> None:
        waiting, self._to_store = self._to_store, []
        try:
            kept = self.state.store_returns([(jid, wire) for jid, wire, _ in waiting])
        except BaseException as exc:  # (a damaged file): each waiting job fails with it
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (jid, _, future), ok in zip(waiting, kept, strict=True):
            if not ok:
                log.warning(
                    "job %s: return kept in memory only (cannot write %s: disk full); sent anyway",
                    jid,
                    self.state.path,
                    extra={"jid": jid},
                )
            if not future.done():
                future.set_result(None)

    async def resend_returns(self) -> None:
        """Store what a full disk kept in memory, forget expired claims, re-send unacknowledged returns."""
        try:
            self.state.flush()
            self.state.prune(self.clock())
            returns = self.state.unacked()
        except StorageFull as exc:
            log.debug("returns not re-sent this time: %s", exc)
            return
        for wire in returns:
            await self.send(wire)
