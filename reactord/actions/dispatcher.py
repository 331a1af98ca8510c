"""Running what rules decide: bounded concurrency, per-key locks, timeouts, retries, dead letters.

A firing (one rule, one event) runs its actions in order as one task; an action that fails
for good stops the ones after it (recorded as skipped) and lands in the dead letters, from
where an operator can retry it. Nothing here blocks the reactor: ``submit`` only records
and schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from reactord import jsonable
from reactord.actions import ACTIONS
from reactord.actions.context import ActionContext, ActionFailed
from reactord.protocol.errors import ReactordError
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.actionspec import ActionSpec, Retry
from reactord.reactor.rules import Rule
from reactord.reactor.templates import TemplateError
from reactord.stats import Stats
from reactord.store.audit import AuditLog, DeadLetter

log = logging.getLogger("reactord.actions")

ContextFactory = Callable[[Event, str, str, float, bool], ActionContext]
RUN_GRACE = 2.0  # a run action waits this much past its job timeout for the returns


class ActionDispatcher:
    def __init__(
        self,
        audit: AuditLog,
        make_context: ContextFactory,
        stats: Stats,
        *,
        max_concurrent: int = 64,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.audit = audit
        self.make_context = make_context
        self.stats = stats
        self.max_pending = max_pending
        self.clock = clock
        self.rand = rand
        self._slots = asyncio.Semaphore(max_concurrent)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, firings using it)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, rule: Rule, event: Event, *, replay: str | None = None) -> list[str]:
        """Record the firing's actions as pending and schedule them; return their ids."""
        ids = [new_id(self.clock()) for _ in rule.do]
        for action_id, spec in zip(ids, rule.do, strict=True):
            self.audit.add_action(
                action_id, event.id, rule.name, spec.index, spec.kind, spec.label, self.clock(), None, replay
            )
        if len(self._tasks) >= self.max_pending:
            for action_id, spec in zip(ids, rule.do, strict=True):
                self._dead(action_id, event, rule.name, spec, None, "the action queue is full", 0)
            self.stats.incr("actions.refused_full")
            return ids
        task = asyncio.get_running_loop().create_task(self._firing(rule, event, ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ids

    async def _firing(self, rule: Rule, event: Event, ids: list[str]) -> None:
        """The rule's actions in order; one that fails for good stops the rest."""
        async with self._slots:
            for position, (action_id, spec) in enumerate(zip(ids, rule.do, strict=True)):
                try:
                    params, lock_key = spec.render(event), spec.lock_key(event)
                except TemplateError as exc:
                    self._dead(action_id, event, rule.name, spec, None, f"template: {exc}", 0)
                    self._skip(ids[position + 1 :])
                    return
                self.audit.update_action(action_id, params=jsonable.dumps(params))
                error, attempts = await self._attempts(
                    action_id,
                    event,
                    rule.name,
                    spec.kind,
                    spec.label,
                    params,
                    spec.timeout,
                    spec.retry,
                    lock_key,
                )
                if error is not None:
                    self._dead(action_id, event, rule.name, spec, params, error, attempts)
                    self._skip(ids[position + 1 :])
                    return

    def _measure(self, rule: str, kind: str, outcome: str, started: float) -> None:
        self.stats.incr_labeled("actions", rule=rule, kind=kind, outcome=outcome)
        self.stats.observe("action_seconds", max(0.0, self.clock() - started), kind=kind)

    def _skip(self, ids: list[str]) -> None:
        for later in ids:
            self.audit.update_action(later, status="skipped", error="an earlier action failed")

    async def _attempts(
        self,
        action_id: str,
        event: Event,
        rule: str,
        kind: str,
        label: str,
        params: dict[str, Any],
        timeout: float,
        retry: Retry,
        lock_key: str | None,
    ) -> tuple[str | None, int]:
        """Try up to ``retry.attempts`` times: (None, tries) on success, else (last error, tries)."""
        error = "not tried"
        attempt = 0
        async with self._locked(lock_key):
            for attempt in range(1, retry.attempts + 1):
                started = self.clock()
                self.audit.update_action(action_id, status="running", attempts=attempt, started=started)
                ctx = self.make_context(event, rule, action_id, timeout, False)
                try:
                    async with asyncio.timeout(timeout + (RUN_GRACE if kind == "run" else 0)):
                        result = await ACTIONS[kind](params, ctx)
                except ActionFailed as exc:
                    error, again, jid = str(exc), exc.retry, exc.jid
                except TimeoutError:
                    error, again, jid = f"timed out after {timeout:g}s", True, None
                except ReactordError as exc:  # e.g. a target that is not valid: trying again cannot help
                    error, again, jid = str(exc), False, None
                except Exception as exc:  # a bug in an action: recorded and contained, never left running
                    log.exception("%s: %s raised", rule, label)
                    error, again, jid = f"internal error: {type(exc).__name__}: {exc}", False, None
                else:
                    self._measure(rule, kind, "ok", started)
                    self.audit.update_action(
                        action_id,
                        status="ok",
                        finished=self.clock(),
                        result=result,
                        jid=result.get("jid"),
                        error=None,
                    )
                    self.stats.incr(f"actions.ok.{kind}")
                    log.info(
                        "%s: %s done",
                        rule,
                        label,
                        extra={"rule": rule, "event_id": event.id, "action": kind, "jid": result.get("jid")},
                    )
                    return None, attempt
                self._measure(rule, kind, "failed", started)
                self.audit.update_action(
                    action_id, status="failed", finished=self.clock(), error=error, jid=jid
                )
                self.stats.incr(f"actions.failed.{kind}")
                log.warning(
                    "%s: %s failed (try %d of %d): %s",
                    rule,
                    label,
                    attempt,
                    retry.attempts,
                    error,
                    extra={"rule": rule, "event_id": event.id, "action": kind},
                )
                if not again or attempt == retry.attempts:
                    return error, attempt
                await asyncio.sleep(retry.delay(attempt, self.rand()))
            return error, attempt

    @contextlib.asynccontextmanager
    async def _locked(self, key: str | None) -> AsyncIterator[None]:
        """Hold the lock named ``key`` (none when ``key`` is None); forget it when nobody uses it."""
        if key is None:
            yield
            return
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _dead(
        self,
        action_id: str,
        event: Event,
        rule: str,
        spec: ActionSpec,
        params: dict[str, Any] | None,
        error: str,
        attempts: int,
    ) -> None:
        now = self.clock()
        self.audit.update_action(action_id, status="dead", finished=now, error=error)
        self.audit.add_dead(
            DeadLetter(
                id=new_id(now),
                action_id=action_id,
                event_id=event.id,
                rule=rule,
                kind=spec.kind,
                label=spec.label,
                params=params,
                timeout=spec.timeout,
                retry=asdict(spec.retry),
                error=error,
                attempts=attempts,
                created=now,
                status="open",
                updated=now,
            )
        )
        self.stats.incr("deadletters")
        self.stats.incr_labeled("actions", rule=rule, kind=spec.kind, outcome="dead")
        log.error(
            "%s: %s went to the dead letters: %s",
            rule,
            spec.label,
            error,
            extra={"rule": rule, "event_id": event.id, "action": spec.kind},
        )

    async def retry_dead(self, letter: DeadLetter, event: Event) -> tuple[bool, str]:
        """Run a dead letter's action again (with its retry policy); resolve it on success."""
        if letter.status != "open":
            return False, f"dead letter {letter.id} is {letter.status}, not open"
        if letter.params is None:
            return False, (
                "this action never ran: its parameters did not render (see the error); "
                "fix the rule, then `reactord event replay` the event"
            )
        retry = Retry(**letter.retry)
        action_id = new_id(self.clock())
        self.audit.add_action(
            action_id,
            letter.event_id,
            letter.rule,
            -1,
            letter.kind,
            f"retry of {letter.label}",
            self.clock(),
            letter.params,
            None,
        )
        error, tries = await self._attempts(
            action_id,
            event,
            letter.rule,
            letter.kind,
            letter.label,
            letter.params,
            letter.timeout,
            retry,
            None,
        )
        self.audit.update_dead(
            letter.id,
            status="open" if error else "resolved",
            error=error or letter.error,
            attempts=letter.attempts + tries,
            now=self.clock(),
        )
        return error is None, error or ""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
