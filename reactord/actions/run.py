"""``run``: a function on the targeted minions, as a job whose returns are stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reactord.actions.context import ActionContext, ActionFailed
from reactord.base.batching import Batch
from reactord.base.jsonable import to_json
from reactord.protocol.errors import StorageFull

if TYPE_CHECKING:
    from reactord.jobrunner import JobResult


async def execute(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    if ctx.jobs is None or ctx.resolve_target is None:
        raise ActionFailed("no master to run jobs", retry=False)
    target = params["target"]
    if not isinstance(target, str):
        raise ActionFailed(f"target must be text, got {target!r}", retry=False)
    if ctx.resuming and (job := ctx.jobs.latest_for(ctx.action_id)) is not None:
        return _outcome(await ctx.jobs.resume(job))  # it was sent before the master stopped
    minions = ctx.resolve_target(target, params["target_type"])  # a TargetError is not retried
    if not minions:
        raise ActionFailed(f"no accepted minion matches {params['target_type']} target {target!r}")
    if params.get("gate") is not None:
        if ctx.check_gate is None:
            raise ActionFailed("this action has a gate but nothing can check it", retry=False)
        closed = await ctx.check_gate(params["gate"], minions)
        if closed:
            raise ActionFailed(f"gate closed: {closed}")  # retried with backoff: waits for a healthy fleet
    try:
        result = await ctx.jobs.run(
            minions,
            params["fun"],
            params["args"],
            params["kwargs"],
            timeout=ctx.timeout,
            target=target,
            target_type=params["target_type"],
            origin=f"rule:{ctx.rule}",
            causation=ctx.event.id,
            depth=ctx.event.depth + 1,
            action=ctx.action_id,
            batch=None if params.get("batch") is None else Batch.from_public(params["batch"]),
        )
    except StorageFull as exc:
        raise ActionFailed(str(exc)) from None  # nothing was sent; tried again with backoff
    return _outcome(result)


def _outcome(result: JobResult) -> dict[str, Any]:
    failed = [
        f"{m}: {_reason(r)}"
        for m, r in result.returns.items()
        if not r.get("success") and not r.get("not_run")
    ]
    if failed:
        shown = "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise ActionFailed(
            f"job {result.jid} failed on {len(failed)} of {len(result.minions)}: {shown}", jid=result.jid
        )
    return {"jid": result.jid, "minions": result.minions, "summary": result.summary}


def _reason(ret: dict[str, Any]) -> str:
    """Why one minion failed, as one line of text."""
    if ret.get("error"):
        text = str(ret["error"])
    elif ret.get("return") not in (None, "", [], {}):
        text = f"retcode {ret.get('retcode')}: {to_json(ret['return'])}"
    else:
        text = f"retcode {ret.get('retcode')}"
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
