"""``log``: a line in the master's log, with the event id and the rule as fields.

Keys: ``log`` (the message, a template) and ``level`` (debug, info, warning or error; info
by default). Default timeout 5s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactord.actions.context import ActionContext
from reactord.actions.kind import ActionKind
from reactord.reactor.actionspec import ActionParams, text_template

log = logging.getLogger("reactord.rules")


@dataclass(frozen=True, slots=True)
class LogParams(ActionParams):
    message: Any  # text, or a template (rendered: what the event held)
    level: str


class Log(ActionKind[LogParams]):
    name = "log"
    keys = ("log", "level")
    default_timeout = 5.0
    params_type = LogParams

    def parse(self, spec: Mapping[str, Any]) -> LogParams:
        level = spec.get("level", "info")
        if level not in ("debug", "info", "warning", "error"):
            raise ValueError("level: expected debug, info, warning or error")
        return LogParams(text_template(spec["log"], "log"), level)

    async def execute(self, params: LogParams, ctx: ActionContext) -> dict[str, Any]:
        message = params.message if isinstance(params.message, str) else repr(params.message)
        level = getattr(logging, str(params.level).upper())
        log.log(level, "%s", message, extra={"rule": ctx.rule, "event_id": ctx.event.id})
        return {"message": message}


KIND = Log()
