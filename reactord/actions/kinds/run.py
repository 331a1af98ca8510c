"""``run``: a function on the targeted minions, as a job whose returns are stored.

Keys: ``run`` (the function, ``service.restart``), ``target`` (default ``{{ source }}``: the
minion the event came from; values from the event are matched literally), ``target_type``
(glob by default), ``args``, ``kwargs``, ``batch`` with ``batch_wait`` and ``failhard``, and
``gate`` (the fleet must be fit first: ``{on, when, target, target_type, allow_stale}`` or
``{checks: [{on, when}, ...], ...}``). Default timeout 30s; a try waits ``RUN_GRACE`` past
it for the returns, and a batched job is bounded by its own clock (each batch by the
timeout), not by the dispatcher's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactord.actions.context import ActionContext, ActionFailed, JobOutcome
from reactord.actions.kind import ActionKind
from reactord.base.batching import Batch, parse_batch
from reactord.base.jsonable import to_json
from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import StorageFull
from reactord.protocol.messages import valid_function_name
from reactord.reactor.actionspec import (
    ActionParams,
    check_target,
    target_escape,
    target_type,
    text_template,
)
from reactord.reactor.gatechecks import GateError, compile_checks
from reactord.reactor.templates import compile_value

RUN_GRACE = 2.0  # a run action waits this much past its job timeout for the returns


@dataclass(frozen=True, slots=True)
class RunParams(ActionParams):
    fun: str
    target: Any  # text, or a template of it (rendered: what the event held)
    target_type: str
    args: Any  # a list, templates inside
    kwargs: Any  # a mapping, templates inside
    batch: dict[str, Any] | None = None  # Batch.public()
    gate: dict[str, Any] | None = None  # parse_gate's

    def written_targets(self) -> list[tuple[str, str, str]]:
        out = []
        if isinstance(self.target, str):
            out.append(("target", self.target, self.target_type))
        if self.gate is not None and self.gate.get("target") is not None:
            out.append(("gate.target", self.gate["target"], self.gate["target_type"]))
        return out


class Run(ActionKind[RunParams]):
    name = "run"
    keys = ("run", "target", "target_type", "args", "kwargs", "gate", "batch", "batch_wait", "failhard")
    default_timeout = 30.0
    params_type = RunParams

    def parse(self, spec: Mapping[str, Any]) -> RunParams:
        fun = spec["run"]
        if not isinstance(fun, str) or not valid_function_name(fun):
            raise ValueError(f"run: {fun!r} is not a function name like service.restart")
        kind = target_type(spec.get("target_type", "glob"), "target_type")
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not isinstance(args, list):
            raise ValueError("args: expected a list")
        if not isinstance(kwargs, dict):
            raise ValueError("kwargs: expected a mapping")
        target = text_template(spec.get("target", "{{ source }}"), "target", target_escape(kind))
        check_target(target, kind, "target")
        args, kwargs = compile_value(args), compile_value(kwargs)
        batch = None
        if "batch" in spec:
            wait = parse_duration(spec.get("batch_wait", 0))
            failhard = spec.get("failhard", False)
            if not isinstance(failhard, bool):
                raise ValueError("failhard: expected true or false")
            try:
                batch = parse_batch(spec["batch"], wait=wait, failhard=failhard).public()
            except ValueError as exc:
                raise ValueError(f"batch: {exc}") from None
        elif "batch_wait" in spec or "failhard" in spec:
            raise ValueError("batch_wait and failhard go with batch:")
        gate = parse_gate(spec["gate"]) if "gate" in spec else None
        return RunParams(fun, target, kind, args, kwargs, batch, gate)

    def time_limit(self, params: RunParams, timeout: float) -> float | None:
        # a batched job takes as many rounds as it has batches, each bounded by the job's
        # timeout: it is bounded by its own clock, not by the dispatcher's
        return None if params.batch is not None else timeout + RUN_GRACE

    async def execute(self, params: RunParams, ctx: ActionContext) -> dict[str, Any]:
        jobs, resolve = ctx.services.jobs, ctx.services.resolve_target
        if jobs is None or resolve is None:
            raise ActionFailed("no master to run jobs", retry=False)
        target = params.target
        if not isinstance(target, str):
            raise ActionFailed(f"target must be text, got {target!r}", retry=False)
        if ctx.resuming and (job := jobs.latest_for(ctx.action_id)) is not None:
            return _outcome(await jobs.resume(job))  # it was sent before the master stopped
        minions = resolve(target, params.target_type)  # a TargetError is not retried
        if not minions:
            raise ActionFailed(f"no accepted minion matches {params.target_type} target {target!r}")
        if params.gate is not None:
            if ctx.services.check_gate is None:
                raise ActionFailed("this action has a gate but nothing can check it", retry=False)
            closed = ctx.services.check_gate(params.gate, minions)
            if closed:  # retried with backoff: waits for a healthy fleet
                raise ActionFailed(f"gate closed: {closed}")
        try:
            job = jobs.start(
                minions,
                params.fun,
                params.args,
                params.kwargs,
                timeout=ctx.timeout,
                target=target,
                target_type=params.target_type,
                origin=f"rule:{ctx.rule}",
                causation=ctx.event.id,
                depth=ctx.event.depth + 1,
                action=ctx.action_id,
                batch=None if params.batch is None else Batch.from_public(params.batch),
            )
        except StorageFull as exc:
            raise ActionFailed(str(exc)) from None  # nothing was sent; tried again with backoff
        return _outcome(await jobs.follow(job))


KIND = Run()


def parse_gate(value: Any) -> dict[str, Any]:
    """``gate: {on, when, target, target_type, allow_stale}`` (or ``checks: [{on, when}, ...]``)."""
    if not isinstance(value, dict):
        raise ValueError("gate: expected {on: TAG_GLOB, when: {...}} or {checks: [...]}")
    extra = set(value) - {"on", "when", "checks", "target", "target_type", "allow_stale"}
    if extra:
        raise ValueError(f"gate: unknown key {sorted(extra)[0]!r}")
    if "checks" in value and ("on" in value or "when" in value):
        raise ValueError("gate: give checks: [...] or on/when, not both")
    groups = value["checks"] if "checks" in value else [{k: value[k] for k in ("on", "when") if k in value}]
    target = value.get("target")
    if target is not None and (not isinstance(target, str) or "{{" in target):
        raise ValueError("gate.target: expected a target like 'web*' (templates are not supported here)")
    kind = target_type(value.get("target_type", "glob"), "gate.target_type")
    if target is not None:
        check_target(target, kind, "gate.target")
    try:
        compile_checks(groups)
    except GateError as exc:
        raise ValueError(f"gate: {exc}") from None
    allow_stale = value.get("allow_stale", False)
    if not isinstance(allow_stale, bool):
        raise ValueError("gate.allow_stale: expected true or false")
    return {"checks": groups, "target": target, "target_type": kind, "allow_stale": allow_stale}


def _outcome(result: JobOutcome) -> dict[str, Any]:
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
