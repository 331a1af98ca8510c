"""Running what rules decide: an action outbox, bounded concurrency, per-key locks, timeouts,
retries, dead letters.

A firing (one rule, one event) runs its actions in order as one task; an action that fails
for good stops the ones after it (recorded as skipped) and lands in the dead letters, from
where an operator can retry it.

The outbox: a firing's actions are rows of the ``actions`` table written in the transaction
of the event that decided them (``action_rows``), each with a stable idempotency key (event
id, rule, action index). The dispatcher runs at most ``max_concurrent`` firings and queues
the rest in memory, bounded by count and bytes; past that bound it reports itself
``saturated`` and ingest waits (minions keep their events in their outboxes): nothing is
refused. After a crash the rows still pending or running are resumed (``resume``): an action
that can tell it already ran (a ``fire`` whose event is logged, a ``run`` whose job exists)
is not run twice; the others run again with the same key (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

from reactord.actions.context import ActionContext, ActionFailed, ActionServices
from reactord.actions.kind import Registry
from reactord.actions.kinds import KINDS
from reactord.base import jsonable
from reactord.base.stats import Stats
from reactord.protocol.errors import ReactordError
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.actionspec import ActionSpec, Retry
from reactord.reactor.rules import Rule
from reactord.reactor.templates import TemplateError
from reactord.store.audit import AuditLog, DeadLetter, action_row

log = logging.getLogger("reactord.actions")


def idempotency_key(event_id: str, rule: str, index: int, replay: str | None = None) -> str:
    """The key an action keeps across retries, restarts and dead-letter retries."""
    key = f"{event_id}/{rule}/{index}"
    return f"{key}/replay/{replay}" if replay else key


def firing_weight(event: Event) -> int:
    """What a queued firing holds in memory, roughly (its event, unpacked)."""
    return 600 + 4 * len(event.packed_data())


@dataclass(slots=True)
class Firing:
    """One rule fired on one event: its action ids (one per action, in order), and where to
    start (a resumed firing skips the actions that had finished)."""

    rule: Rule
    event: Event
    ids: list[str]
    replay: str | None = None
    start: int = 0
    resumed: bool = False
    weight: int = 0


class ActionDispatcher:
    def __init__(
        self,
        audit: AuditLog,
        services: ActionServices,
        stats: Stats,
        *,
        kinds: Registry = KINDS,
        max_concurrent: int = 64,
        max_pending: int = 10_000,
        max_pending_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.audit = audit
        self.services = services
        self.kinds = kinds
        self.stats = stats
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock
        self.rand = rand
        self._queue: deque[Firing] = deque()
        self.queued_bytes = 0
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, firings using it)
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._room.set()

    # -- the outbox -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Firings queued or running."""
        return len(self._tasks) + len(self._queue)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._tasks)

    @property
    def room(self) -> int:
        """Firings the queue can take before it is at its bound."""
        return max(0, self.max_pending - self.in_flight)

    @property
    def saturated(self) -> bool:
        """Whether the queue is at its bound: ingest should wait (``wait_room``)."""
        return self.in_flight >= self.max_pending or self.queued_bytes >= self.max_pending_bytes

    async def wait_room(self) -> None:
        """Return once the queue has room again (below 90% of both bounds)."""
        while self.saturated or not self._room.is_set():
            self._room.clear()
            self._update_room()
            if self._room.is_set():
                return
            await self._room.wait()

    def _update_room(self) -> None:
        if self.in_flight < 0.9 * self.max_pending and self.queued_bytes < 0.9 * self.max_pending_bytes:
            self._room.set()

    def action_rows(
        self, rule: Rule, event: Event, replay: str | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """New action ids for a firing, and their ``actions`` rows (``ADD_ACTION``) to write with
        the event's transaction."""
        now = self.clock()
        ids = [new_id(now) for _ in rule.do]
        rows = [
            action_row(
                action_id,
                event.id,
                rule.name,
                spec.index,
                spec.kind,
                spec.label_for(event),
                now,
                replay,
                idempotency_key(event.id, rule.name, spec.index, replay),
            )
            for action_id, spec in zip(ids, rule.do, strict=True)
        ]
        return ids, rows

    def submit(self, rule: Rule, event: Event, *, replay: str | None = None) -> list[str]:
        """Write a firing's actions (in a transaction of their own) and queue them; their ids."""
        ids, rows = self.action_rows(rule, event, replay)
        self.audit.add_actions(rows)
        self.enqueue(Firing(rule, event, ids, replay))
        return ids

    def enqueue(self, firing: Firing) -> None:
        """Queue a firing whose action rows are written; it runs when a slot is free."""
        firing.weight = firing_weight(firing.event)
        self._queue.append(firing)
        self.queued_bytes += firing.weight
        if self.saturated:
            self._room.clear()
        self._pump()

    def _pump(self) -> None:
        while self._queue and len(self._tasks) < self.max_concurrent:
            firing = self._queue.popleft()
            task = asyncio.get_running_loop().create_task(self._firing(firing))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, firing=firing))

    def _finished(self, task: asyncio.Task[None], *, firing: Firing) -> None:
        self._tasks.discard(task)
        self.queued_bytes -= firing.weight
        if not task.cancelled() and task.exception() is not None:
            log.error("a firing of %s failed: %r", firing.rule.name, task.exception())
        self._update_room()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._pump()

    async def _firing(self, firing: Firing) -> None:
        """The rule's actions in order; one that fails for good stops the rest."""
        rule, event, ids = firing.rule, firing.event, firing.ids
        for position in range(firing.start, len(ids)):
            action_id, spec = ids[position], rule.do[position]
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
                spec.label_for(event),
                params,
                spec.timeout,
                spec.retry,
                lock_key,
                key=idempotency_key(event.id, rule.name, spec.index, firing.replay),
                resuming=firing.resumed and position == firing.start,
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
        *,
        key: str,
        resuming: bool = False,
    ) -> tuple[str | None, int]:
        """Try up to ``retry.attempts`` times: (None, tries) on success, else (last error, tries).

        ``resuming``: the first try continues an action a stopped master may have started.
        """
        error = "not tried"
        attempt = 0
        async with self._locked(lock_key):
            for attempt in range(1, retry.attempts + 1):
                started = self.clock()
                self.audit.update_action(action_id, status="running", attempts=attempt, started=started)
                ctx = ActionContext(
                    event,
                    rule,
                    action_id,
                    timeout,
                    self.services,
                    idempotency_key=key,
                    resuming=resuming and attempt == 1,
                )
                try:
                    executor = self.kinds[kind]
                    typed = executor.load(params)
                    async with asyncio.timeout(executor.time_limit(typed, timeout)):
                        result = await executor.execute(typed, ctx)
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
                label=spec.label_for(event),
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
            spec.label_for(event),
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
            key=self.audit.action_key(letter.action_id) or idempotency_key(letter.event_id, letter.rule, -1),
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
        """Stop running firings; what is queued stays pending in the outbox for the next start."""
        self._queue.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
