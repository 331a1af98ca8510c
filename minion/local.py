"""The minion's local socket: how ``reactord event send`` and ``reactord call`` on this host
reach the minion.

An owner-only unix socket in the minion's ``state_dir``. ``event.send`` returns once the
events are in the durable outbox, and fails (code ``failed``, the CLI exits 1) with
"cannot write <path>: disk full; nothing was queued" when the outbox cannot be written;
``call`` runs one function through the minion's executor, under the same
``functions.allow`` as a job from the master, and returns its return (nothing goes to the
master but the events the function itself emits); ``status`` says how the minion is doing,
with the master it is on (``master``) and the list it fails over along (``masters``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from minion.errors import OutboxUnavailable
from minion.outbox import EventTooLarge, OutboxFull
from reactord.protocol.errors import EncodeError, RequestError, TagError
from reactord.protocol.ids import new_id
from reactord.protocol.localsock import Handler
from reactord.protocol.messages import MAX_JOB_SECONDS, CommandBody, valid_function_name
from reactord.protocol.tags import localize, validate_tag

if TYPE_CHECKING:
    from minion.agent import Agent

log = logging.getLogger("minion.local")

MAX_COUNT = 1_000_000


def handlers(agent: Agent) -> dict[str, Handler]:
    async def send(args: dict[str, Any]) -> Any:
        return _send(agent, args)

    async def call(args: dict[str, Any]) -> Any:
        return await _call(agent, args)

    async def status(args: dict[str, Any]) -> Any:
        return agent.status_report()

    return {"event.send": send, "call": call, "status": status}


def _send(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
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


async def _call(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    fun, call_args, kwargs = args.get("fun"), args.get("args", []), args.get("kwargs", {})
    timeout = args.get("timeout", 30.0)
    if not isinstance(fun, str) or not valid_function_name(fun):
        raise RequestError(f"bad function name {fun!r} (expected module.function)", "bad_request")
    if not isinstance(call_args, list) or not isinstance(kwargs, dict):
        raise RequestError("args must be a list and kwargs a mapping", "bad_request")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_JOB_SECONDS
    ):
        raise RequestError(f"timeout must be between 0 and {MAX_JOB_SECONDS:g} seconds", "bad_request")
    now = agent.clock()
    body = CommandBody(
        jid=f"local-{new_id(now)}",
        id=agent.config.id,
        fun=fun,
        args=call_args,
        kwargs=kwargs,
        timeout=float(timeout),
        expires=now + timeout,
        nonce=os.urandom(16),
    )
    log.info("local call %s (%s)", fun, body.jid, extra={"jid": body.jid})
    ret = await agent.executor.run(body)
    out: dict[str, Any] = {"id": ret.id, "success": ret.success, "return": ret.ret, "retcode": ret.retcode}
    if ret.error:
        out["error"] = ret.error
    return out
