"""The tries of one action: each bounded by its kind's time limit, recorded, counted and
logged; between tries, backoff with jitter (the rule's ``retry:``).

A try fails with a reason: ``ActionFailed`` (the kind says whether trying again can help),
a timeout (tried again), another ``ReactordError`` such as a target that is not valid (not
tried again), or any other exception, a bug in the kind: logged with its traceback,
recorded as an internal error and never tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.actions.context import ActionContext, ActionFailed, ActionServices
from reactord.actions.kind import Registry
from reactord.base.stats import Stats
from reactord.protocol.errors import ReactordError
from reactord.protocol.events import Event
from reactord.reactor.actionspec import Retry
from reactord.store.interfaces import ActionLog

log = logging.getLogger("reactord.actions")


@dataclass(frozen=True, slots=True)
class Rendered:
    """An action rendered for its event: what its tries need."""

    action_id: str
    event: Event
    rule: str
    kind: str
    label: str
    params: dict[str, Any]  # the record of the rendered parameters
    timeout: float
    retry: Retry
    key: str  # the idempotency key
    resuming: bool = False  # the first try continues an action a stopped master may have started


class Tries:
    def __init__(
        self,
        audit: ActionLog,
        services: ActionServices,
        kinds: Registry,
        stats: Stats,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        self.audit = audit
        self.services = services
        self.kinds = kinds
        self.stats = stats
        self.clock = clock
        self.rand = rand

    async def run(self, action: Rendered) -> tuple[str | None, int]:
        """Try up to ``retry.attempts`` times: (None, tries) on success, else (last error, tries)."""
        error: str | None = "not tried"
        attempt = 0
        for attempt in range(1, action.retry.attempts + 1):
            error, again = await self._once(action, attempt)
            if error is None:
                return None, attempt
            if not again or attempt == action.retry.attempts:
                return error, attempt
            await asyncio.sleep(action.retry.delay(attempt, self.rand()))
        return error, attempt

    async def _once(self, action: Rendered, attempt: int) -> tuple[str | None, bool]:
        """One try, recorded: (None, False) when it succeeded, else (why, whether to try again)."""
        started = self.clock()
        self.audit.update_action(action.action_id, status="running", attempts=attempt, started=started)
        ctx = ActionContext(
            action.event,
            action.rule,
            action.action_id,
            action.timeout,
            self.services,
            idempotency_key=action.key,
            resuming=action.resuming and attempt == 1,
        )
        jid: str | None = None
        try:
            kind = self.kinds[action.kind]
            params = kind.load(action.params)
            async with asyncio.timeout(kind.time_limit(params, action.timeout)):
                result = await kind.execute(params, ctx)
        except ActionFailed as exc:
            error, again, jid = str(exc), exc.retry, exc.jid
        except TimeoutError:
            error, again = f"timed out after {action.timeout:g}s", True
        except ReactordError as exc:  # e.g. a target that is not valid: trying again cannot help
            error, again = str(exc), False
        except Exception as exc:  # a bug in an action: recorded and contained, never left running
            log.exception("%s: %s raised", action.rule, action.label)
            error, again = f"internal error: {type(exc).__name__}: {exc}", False
        else:
            self._succeeded(action, result, started)
            return None, False
        self._failed(action, attempt, error, jid, started)
        return error, again

    def _succeeded(self, action: Rendered, result: dict[str, Any], started: float) -> None:
        self._measure(action, "ok", started)
        self.audit.update_action(
            action.action_id,
            status="ok",
            finished=self.clock(),
            result=result,
            jid=result.get("jid"),
            error=None,
        )
        self.stats.incr(f"actions.ok.{action.kind}")
        log.info(
            "%s: %s done",
            action.rule,
            action.label,
            extra={
                "rule": action.rule,
                "event_id": action.event.id,
                "action": action.kind,
                "jid": result.get("jid"),
            },
        )

    def _failed(self, action: Rendered, attempt: int, error: str, jid: str | None, started: float) -> None:
        self._measure(action, "failed", started)
        self.audit.update_action(
            action.action_id, status="failed", finished=self.clock(), error=error, jid=jid
        )
        self.stats.incr(f"actions.failed.{action.kind}")
        log.warning(
            "%s: %s failed (try %d of %d): %s",
            action.rule,
            action.label,
            attempt,
            action.retry.attempts,
            error,
            extra={"rule": action.rule, "event_id": action.event.id, "action": action.kind},
        )

    def _measure(self, action: Rendered, outcome: str, started: float) -> None:
        self.stats.incr_labeled("actions", rule=action.rule, kind=action.kind, outcome=outcome)
        self.stats.observe("action_seconds", max(0.0, self.clock() - started), kind=action.kind)
