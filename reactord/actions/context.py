"""What an action may use: the event that caused it, its rule, and the master's services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reactord.base.errors import MasterError
from reactord.protocol.events import Event

if TYPE_CHECKING:
    from reactord.jobrunner import JobRunner
    from reactord.pipeline import EventPipeline


class ActionFailed(MasterError):
    """An action that did not succeed; ``retry`` says whether trying again can help."""

    def __init__(self, message: str, *, retry: bool = True, jid: str | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.jid = jid


@dataclass(frozen=True, slots=True)
class ActionContext:
    event: Event
    rule: str
    action_id: str
    timeout: float
    dry_run: bool
    max_depth: int
    pipeline: EventPipeline | None
    jobs: JobRunner | None
    resolve_target: Callable[[str, str], list[str]] | None
    check_gate: Callable[[dict[str, Any], list[str]], Awaitable[str | None]] | None = None
    #: Stable across retries and restarts: webhooks send it as ``Idempotency-Key``.
    idempotency_key: str = ""
    #: This try continues an action a stopped master may have started: check before acting.
    resuming: bool = False


Execute = Callable[[dict[str, Any], ActionContext], Awaitable[dict[str, Any]]]
