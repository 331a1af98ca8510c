"""Dead letters: actions that failed for good, kept with what they need to run again, and
tried again when an operator asks (with the action's retry policy and idempotency key)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from reactord.actions.outbox import idempotency_key
from reactord.actions.tries import Rendered, Tries
from reactord.base.stats import Stats
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.actionspec import ActionSpec, Retry
from reactord.store.audit import DeadLetter
from reactord.store.interfaces import ActionLog

log = logging.getLogger("reactord.actions")


class DeadLetters:
    def __init__(self, audit: ActionLog, tries: Tries, stats: Stats, clock: Callable[[], float]) -> None:
        self.audit = audit
        self.tries = tries
        self.stats = stats
        self.clock = clock

    def bury(
        self,
        action_id: str,
        event: Event,
        rule: str,
        spec: ActionSpec,
        params: dict[str, Any] | None,
        error: str,
        attempts: int,
    ) -> None:
        """Record an action that failed for good (``params`` None: its templates did not render)."""
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

    async def retry(self, letter: DeadLetter, event: Event) -> tuple[bool, str]:
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
        action = Rendered(
            action_id,
            event,
            letter.rule,
            letter.kind,
            letter.label,
            letter.params,
            letter.timeout,
            retry,
            key=self.audit.action_key(letter.action_id) or idempotency_key(letter.event_id, letter.rule, -1),
        )
        error, tries = await self.tries.run(action)
        self.audit.update_dead(
            letter.id,
            status="open" if error else "resolved",
            error=error or letter.error,
            attempts=letter.attempts + tries,
            now=self.clock(),
        )
        return error is None, error or ""
