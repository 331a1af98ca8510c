"""``run``: a function on the targeted minions, as a job whose returns are stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reactord.actions.context import ActionContext, ActionFailed
from reactord.protocol.errors import StorageFull

if TYPE_CHECKING:
    from reactord.jobs import JobResult


async def execute(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    if ctx.jobs is None or ctx.resolve_target is None:
        raise ActionFailed("no master to run jobs", retry=False)
    target = params["target"]
    if not isinstance(target, str):
        raise ActionFailed(f"target must be text, got {target!r}", retry=False)
    if ctx.resuming and (job := ctx.jobs.latest_for(ctx.action_id)) is not None:
        return _outcome(await ctx.jobs.resume(job))  # it was sent before the master stopped
    minions = ctx.resolve_target(target, params["target_type"])
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
        )
    except StorageFull as exc:
        raise ActionFailed(str(exc)) from None  # nothing was sent; tried again with backoff
    return _outcome(result)


def _outcome(result: JobResult) -> dict[str, Any]:
    failed = {
        m: r.get("error") or f"retcode {r.get('retcode')}"
        for m, r in result.returns.items()
        if not r.get("success")
    }
    if failed:
        raise ActionFailed(f"job {result.jid} failed on {failed}", jid=result.jid)
    return {"jid": result.jid, "minions": result.minions}
