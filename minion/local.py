"""The minion's local socket: how ``reactord event send`` on this host hands it events.

An owner-only unix socket in the minion's ``state_dir``. ``event.send`` returns once the
events are in the durable outbox, and fails (code ``failed``, the CLI exits 1) with
"cannot write <path>: disk full; nothing was queued" when the outbox cannot be written;
``status`` says how the minion is doing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from minion.errors import OutboxUnavailable
from minion.outbox import EventTooLarge, OutboxFull
from reactord.protocol.errors import EncodeError, RequestError, TagError
from reactord.protocol.localsock import Handler
from reactord.protocol.tags import localize, validate_tag

if TYPE_CHECKING:
    from minion.agent import Agent

MAX_COUNT = 1_000_000


def handlers(agent: Agent) -> dict[str, Handler]:
    async def send(args: dict[str, Any]) -> Any:
        tag, data, count = args.get("tag"), args.get("data", {}), args.get("count", 1)
        try:
            localize(agent.config.id, validate_tag(tag))  # still a valid tag once under minion/<id>/
        except TagError as exc:
            raise RequestError(str(exc), "bad_request") from exc
        if not isinstance(data, dict):
            raise RequestError("data must be a JSON object", "bad_request")
        if type(count) is not int or not 1 <= count <= MAX_COUNT:
            raise RequestError(f"count must be between 1 and {MAX_COUNT}", "bad_request")
        assert isinstance(tag, str)
        events = [(tag, data)] if count == 1 else [(tag, {**data, "n": n}) for n in range(1, count + 1)]
        try:
            seqs = agent.emit_many(events)
        except OutboxFull as exc:
            raise RequestError(str(exc), "outbox_full") from exc
        except OutboxUnavailable as exc:  # a full disk: nothing queued, the minion goes on
            raise RequestError(str(exc), "failed") from exc
        except (EventTooLarge, TagError, EncodeError) as exc:
            raise RequestError(str(exc), "bad_request") from exc
        return {"count": len(seqs), "first_seq": seqs[0], "last_seq": seqs[-1], "epoch": agent.outbox.epoch}

    async def status(args: dict[str, Any]) -> Any:
        return agent.status_report()

    return {"event.send": send, "status": status}
