"""What an action may use: the event that caused it, its rule, and the master's services.

The services are narrow interfaces (``typing.Protocol``) that the master's parts satisfy as
they are: the event pipeline's ``emit``, the event log's ``by_action``, the ``JobRunner``,
the target resolver and the fleet gate. The actions never import those parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import MasterError
from reactord.protocol.events import Event

if TYPE_CHECKING:  # types only: the CLI loads the kinds (rules check) without SQLite
    from reactord.base.batching import Batch
    from reactord.store.jobstore import JobRecord


class ActionFailed(MasterError):
    """An action that did not succeed; ``retry`` says whether trying again can help."""

    def __init__(self, message: str, *, retry: bool = True, jid: str | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.jid = jid


class Emit(Protocol):
    """Log, decide and republish one event of the master's (``EventPipeline.emit``); raises
    ``StorageFull`` when it cannot be written."""

    def __call__(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        source: str = ...,
        causation: str | None = ...,
        depth: int = ...,
        action: str | None = ...,
    ) -> Event: ...


#: ``(causation, action id) -> the event that action fired``, if it fired one (``EventLog.by_action``).
MadeBy = Callable[[str, str], Event | None]

#: ``(target, target type) -> the accepted minions it names``; raises ``TargetError``.
ResolveTarget = Callable[[str, str], list[str]]

#: ``(a run action's gate, its minions) -> why the gate is closed``, or None when it is open.
GateCheck = Callable[[dict[str, Any], list[str]], str | None]


class JobOutcome(Protocol):
    """How a job ended (``jobrunner.JobResult``)."""

    @property
    def jid(self) -> str: ...

    @property
    def minions(self) -> list[str]: ...

    @property
    def returns(self) -> dict[str, dict[str, Any]]: ...

    @property
    def summary(self) -> dict[str, Any]: ...


class Jobs(Protocol):
    """Jobs on minions, as a ``run`` action starts and follows them (``jobrunner.JobRunner``)."""

    def latest_for(self, action_id: str) -> JobRecord | None:
        """The job an action started, if it started one (how a resumed action knows it ran)."""
        ...

    async def resume(self, job: JobRecord) -> JobOutcome:
        """Wait for the returns a job started before the master stopped still misses."""
        ...

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
        origin: str = ...,
        causation: str | None = ...,
        depth: int = ...,
        action: str | None = ...,
        batch: Batch | None = ...,
    ) -> JobRecord:
        """Record a job (``StorageFull``: not recorded, nothing sent)."""
        ...

    async def follow(self, job: JobRecord) -> JobOutcome:
        """Send the job's commands and wait for its returns."""
        ...


@dataclass(frozen=True, slots=True)
class ActionServices:
    """What the master lends its actions, given to the dispatcher once. A kind whose service
    is missing (None: a test, a tool) fails without trying again."""

    max_depth: int  # fire actions deep before a chain is stopped (reactor.max_depth)
    emit: Emit | None = None
    made_by: MadeBy | None = None
    jobs: Jobs | None = None
    resolve_target: ResolveTarget | None = None
    check_gate: GateCheck | None = None
    #: Returns once an event ``emit`` made is durable where it must be before the action
    #: counts as done (cluster mode: stored by the engine; None: it is once ``emit`` returns).
    settled: Callable[[Event], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class ActionContext:
    """One try of one action."""

    event: Event
    rule: str
    action_id: str
    timeout: float
    services: ActionServices
    #: Stable across retries and restarts: webhooks send it as ``Idempotency-Key``.
    idempotency_key: str = ""
    #: This try continues an action a stopped master may have started: check before acting.
    resuming: bool = False
