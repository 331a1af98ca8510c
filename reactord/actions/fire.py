"""``fire``: a new event on the bus, caused by this one (the depth limit stops loops).

The new event names the action that made it, in the same row: a resumed action that finds
its event in the log does not fire again (exactly once across a crash).
"""

from __future__ import annotations

from typing import Any

from reactord.actions.context import ActionContext, ActionFailed
from reactord.protocol.errors import StorageFull, TagError
from reactord.protocol.tags import RESERVED_PREFIX, validate_tag


async def execute(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    tag, data = params["tag"], params["data"]
    if not isinstance(tag, str):
        raise ActionFailed(f"the tag rendered to {tag!r}, not text", retry=False)
    try:
        validate_tag(tag)
    except TagError as exc:
        raise ActionFailed(str(exc), retry=False) from None
    if tag.startswith(RESERVED_PREFIX):
        raise ActionFailed(f"tags under {RESERVED_PREFIX} belong to the master", retry=False)
    depth = ctx.event.depth + 1
    if depth > ctx.max_depth:
        raise ActionFailed(
            f"depth limit: {tag} would be {depth} fire actions deep (max_depth {ctx.max_depth}); "
            "a rule is probably firing its own trigger",
            retry=False,
        )
    if ctx.pipeline is None:
        raise ActionFailed("no bus to fire on", retry=False)
    if ctx.resuming and (made := ctx.pipeline.made_by(ctx.event.id, ctx.action_id)) is not None:
        return {"event_id": made.id, "tag": made.tag}  # fired before the master stopped: once only
    try:
        event = ctx.pipeline.emit(
            tag, data, source="reactor", causation=ctx.event.id, depth=depth, action=ctx.action_id
        )
    except StorageFull as exc:
        raise ActionFailed(str(exc)) from None  # tried again with backoff
    return {"event_id": event.id, "tag": tag}
