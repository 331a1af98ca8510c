"""``fire``: a new event on the bus, caused by this one (the depth limit stops loops).

Keys: ``fire`` (the tag, a template; not under ``reactor/``, which belongs to the master)
and ``data`` (a mapping, templates inside). Default timeout 5s.

The new event names the action that made it, in the same row: a resumed action that finds
its event in the log does not fire again (exactly once across a crash).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactord.actions.context import ActionContext, ActionFailed
from reactord.actions.kind import ActionKind
from reactord.protocol.errors import StorageFull, TagError
from reactord.protocol.tags import RESERVED_PREFIX, validate_tag
from reactord.reactor.actionspec import ActionParams, text_template
from reactord.reactor.templates import compile_value


@dataclass(frozen=True, slots=True)
class FireParams(ActionParams):
    tag: Any  # text, or a template of it
    data: Any  # a mapping, templates inside


class Fire(ActionKind[FireParams]):
    name = "fire"
    keys = ("fire", "data")
    default_timeout = 5.0
    params_type = FireParams

    def parse(self, spec: Mapping[str, Any]) -> FireParams:
        tag = text_template(spec["fire"], "fire")
        if isinstance(tag, str):
            try:
                validate_tag(tag)
            except TagError as exc:
                raise ValueError(f"fire: {exc}") from None
        text = tag if isinstance(tag, str) else tag.text
        if text.startswith(RESERVED_PREFIX):
            raise ValueError(f"fire: tags under {RESERVED_PREFIX} belong to the master")
        data = spec.get("data", {})
        if not isinstance(data, dict):
            raise ValueError("data: expected a mapping")
        return FireParams(tag, compile_value(data))

    async def execute(self, params: FireParams, ctx: ActionContext) -> dict[str, Any]:
        tag, data = params.tag, params.data
        if not isinstance(tag, str):
            raise ActionFailed(f"the tag rendered to {tag!r}, not text", retry=False)
        try:
            validate_tag(tag)
        except TagError as exc:
            raise ActionFailed(str(exc), retry=False) from None
        if tag.startswith(RESERVED_PREFIX):
            raise ActionFailed(f"tags under {RESERVED_PREFIX} belong to the master", retry=False)
        depth, max_depth = ctx.event.depth + 1, ctx.services.max_depth
        if depth > max_depth:
            raise ActionFailed(
                f"depth limit: {tag} would be {depth} fire actions deep (max_depth {max_depth}); "
                "a rule is probably firing its own trigger",
                retry=False,
            )
        emit, made_by = ctx.services.emit, ctx.services.made_by
        if emit is None or made_by is None:
            raise ActionFailed("no bus to fire on", retry=False)
        if ctx.resuming and (made := made_by(ctx.event.id, ctx.action_id)) is not None:
            return {"event_id": made.id, "tag": made.tag}  # fired before the master stopped: once only
        try:
            event = emit(
                tag, data, source="reactor", causation=ctx.event.id, depth=depth, action=ctx.action_id
            )
        except StorageFull as exc:
            raise ActionFailed(str(exc)) from None  # tried again with backoff
        if ctx.services.settled is not None:
            await ctx.services.settled(event)  # in a cluster: stored by the engine before "ok"
        return {"event_id": event.id, "tag": tag}


KIND = Fire()
