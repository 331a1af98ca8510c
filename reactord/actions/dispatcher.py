"""Running what rules decide: the action outbox, run with bounded concurrency, per-key
locks, timeouts, retries and dead letters.

A firing (one rule, one event) runs its actions in order as one task; an action that fails
for good stops the ones after it (recorded as skipped) and lands in the dead letters, from
where an operator can retry it.

The outbox (``outbox.py``): a firing's actions are rows of the ``actions`` table written in
the transaction of the event that decided them (``action_rows``), each with a stable
idempotency key (event id, rule, action index). The dispatcher runs at most
``max_concurrent`` firings and queues the rest in memory, bounded by count and bytes
(``queue.py``); past that bound it reports itself ``saturated`` and ingest waits (minions
keep their events in their outboxes): nothing is refused. After a crash the rows still
pending or running are resumed (``resume.py``): an action that can tell it already ran (a
``fire`` whose event is logged, a ``run`` whose job exists) is not run twice; the others run
again with the same key (at least once).

The pieces: ``queue.py`` (concurrency and back-pressure), ``locks.py`` (per-key locks),
``tries.py`` (timeouts, retries, what each try records and counts), ``deadletters.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reactord.actions.context import ActionServices
from reactord.actions.deadletters import DeadLetters
from reactord.actions.kind import Registry
from reactord.actions.kinds import KINDS
from reactord.actions.locks import KeyedLocks
from reactord.actions.outbox import action_rows, idempotency_key
from reactord.actions.queue import Firing, FiringQueue
from reactord.actions.tries import Rendered, Tries
from reactord.base import jsonable
from reactord.base.stats import Stats
from reactord.protocol.events import Event
from reactord.reactor.rules import Rule
from reactord.reactor.templates import TemplateError
from reactord.store.audit import DeadLetter
from reactord.store.interfaces import ActionLog


class ActionDispatcher:
    def __init__(
        self,
        audit: ActionLog,
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
        self.clock = clock
        self.locks = KeyedLocks()
        self.tries = Tries(audit, services, kinds, stats, clock=clock, rand=rand)
        self.dead_letters = DeadLetters(audit, self.tries, stats, clock)
        self.queue = FiringQueue(
            self._firing,
            max_concurrent=max_concurrent,
            max_pending=max_pending,
            max_pending_bytes=max_pending_bytes,
        )
        #: Cluster mode: asked before an action runs; False leaves it to another master.
        self.claim: Callable[[Rendered], Awaitable[bool]] | None = None

    # -- the queue, as ingest and the status see it --------------------------------------------

    @property
    def in_flight(self) -> int:
        """Firings queued or running."""
        return self.queue.in_flight

    @property
    def queued(self) -> int:
        return self.queue.queued

    @property
    def running(self) -> int:
        return self.queue.running

    @property
    def queued_bytes(self) -> int:
        return self.queue.queued_bytes

    @property
    def room(self) -> int:
        """Firings the queue can take before it is at its bound."""
        return self.queue.room

    @property
    def saturated(self) -> bool:
        """Whether the queue is at its bound: ingest should wait (``wait_room``)."""
        return self.queue.saturated

    async def wait_room(self) -> None:
        """Return once the queue has room again (below 90% of both bounds)."""
        await self.queue.wait_room()

    # -- the outbox -------------------------------------------------------------------------------

    def action_rows(
        self, rule: Rule, event: Event, replay: str | None = None, now: float | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """New action ids for a firing, and their ``actions`` rows (``ADD_ACTION``) to write with
        the event's transaction, created ``now`` (the decision's time; the clock's by default)."""
        return action_rows(rule, event, self.clock() if now is None else now, replay)

    def submit(self, rule: Rule, event: Event, *, replay: str | None = None) -> list[str]:
        """Write a firing's actions (in a transaction of their own) and queue them; their ids."""
        ids, rows = self.action_rows(rule, event, replay)
        self.audit.add_actions(rows)
        self.enqueue(Firing(rule, event, ids, replay))
        return ids

    def enqueue(self, firing: Firing) -> None:
        """Queue a firing whose action rows are written; it runs when a slot is free."""
        self.queue.enqueue(firing)

    # -- running a firing --------------------------------------------------------------------------

    async def _firing(self, firing: Firing) -> None:
        """The rule's actions in order; one that fails for good stops the rest."""
        rule, event, ids = firing.rule, firing.event, firing.ids
        for position in range(firing.start, len(ids)):
            action_id, spec = ids[position], rule.do[position]
            try:
                params, lock_key = spec.render(event), spec.lock_key(event)
            except TemplateError as exc:
                self.dead_letters.bury(action_id, event, rule.name, spec, None, f"template: {exc}", 0)
                self._skip(ids[position + 1 :])
                return
            self.audit.update_action(action_id, params=jsonable.dumps(params))
            action = Rendered(
                action_id,
                event,
                rule.name,
                spec.kind,
                spec.label_for(event),
                params,
                spec.timeout,
                spec.retry,
                key=idempotency_key(event.id, rule.name, spec.index, firing.replay),
                resuming=firing.resumed and position == firing.start,
            )
            if self.claim is not None and not await self.claim(action):
                return  # cluster mode: another master runs it (or has); the rest wait with it
            async with self.locks.hold(lock_key):
                error, attempts = await self.tries.run(action)
            if error is not None:
                self.dead_letters.bury(action_id, event, rule.name, spec, params, error, attempts)
                self._skip(ids[position + 1 :])
                return

    def _skip(self, ids: list[str]) -> None:
        for later in ids:
            self.audit.update_action(later, status="skipped", error="an earlier action failed")

    async def retry_dead(self, letter: DeadLetter, event: Event) -> tuple[bool, str]:
        """Run a dead letter's action again (with its retry policy); resolve it on success."""
        return await self.dead_letters.retry(letter, event)

    async def close(self) -> None:
        """Stop running firings; what is queued stays pending in the outbox for the next start."""
        await self.queue.close()
