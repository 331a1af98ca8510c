"""``log``: a line in the master's log, with the event id and the rule as fields."""

from __future__ import annotations

import logging
from typing import Any

from reactord.actions.context import ActionContext

log = logging.getLogger("reactord.rules")


async def execute(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    message = params["message"] if isinstance(params["message"], str) else repr(params["message"])
    level = getattr(logging, str(params["level"]).upper())
    log.log(level, "%s", message, extra={"rule": ctx.rule, "event_id": ctx.event.id})
    return {"message": message}
