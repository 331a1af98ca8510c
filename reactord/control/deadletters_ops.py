"""Control operations of dead letters (actions that failed every attempt): ``deadletters.list``
and ``deadletters.retry``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError
from reactord.control.args import Args, arg
from reactord.control.interfaces import AuditTrail, Clock, EventHistory
from reactord.protocol.events import Event

if TYPE_CHECKING:
    from reactord.store.audit import DeadLetter


class Retrier(Protocol):
    """What runs a dead letter's action again (the action dispatcher): ``(ok, error)``."""

    async def retry_dead(self, letter: DeadLetter, event: Event) -> tuple[bool, str]: ...


@dataclass(frozen=True, slots=True)
class DeadLetterParts:
    """What the dead-letter operations reach; ``clock`` times a stand-in event."""

    audit: AuditTrail
    retrier: Retrier
    events: EventHistory
    clock: Clock


async def dead_list(parts: DeadLetterParts, args: Args) -> Any:
    """``status``: open (the default), resolved, or all."""
    status = arg(args, "status", str, "open")
    if status not in ("open", "resolved", "all"):
        raise ControlError("argument 'status' is open, resolved or all", "bad_request")
    return [d.public() for d in parts.audit.dead_letters(None if status == "all" else status)]


async def dead_retry(parts: DeadLetterParts, args: Args) -> Any:
    """Retry one dead letter (``id``) or every open one (``all``), one after the other; each
    gets its result. A letter whose event has left the log is retried with a stand-in event
    (``reactor/deadletter``, no data): its action's parameters were recorded with it."""
    if arg(args, "all", bool, False):
        letters = parts.audit.dead_letters("open")
    else:
        letter = parts.audit.dead_letter(arg(args, "id", str))
        if letter is None:
            raise ControlError(f"no dead letter {args.get('id')!r}", "not_found")
        letters = [letter]
    results = []
    for letter in letters:
        event = parts.events.get(letter.event_id) or Event(
            id=letter.event_id, tag="reactor/deadletter", source="master", time=parts.clock(), data={}
        )
        ok, error = await parts.retrier.retry_dead(letter, event)
        results.append({"id": letter.id, "ok": ok, **({"error": error} if error else {})})
    return results
