"""The API's routes, one row each, and the OpenAPI document made from them (docs/api.md).

A row says a route's method and path (after ``PREFIX``), the role it needs, the control
operation it calls (the one the CLI calls over the control socket, so its answer is what
``--json`` prints there) and the arguments it takes from the path, the query or a JSON body.
``reactord.http.api`` serves the rows; ``openapi_document`` describes the same rows, so the
document cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reactord import __version__

PREFIX = "/api/v1"
#: The most items one list answer holds (``limit`` above it is refused).
MAX_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class Param:
    """One argument of a route: its name (the operation's too), JSON type and meaning."""

    name: str
    kind: str
    doc: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # after PREFIX; {name} is a path parameter
    role: str  # read, operate or admin
    summary: str
    op: str  # the control operation (or, for the API's own routes, the handler's name)
    query: tuple[Param, ...] = ()
    body: tuple[Param, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # arguments always given
    shape: Callable[[Any], Any] | None = None  # the answer, from the operation's result
    doc: str = ""

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


_TARGET = (
    Param("target", "string", "a target (glob on minion ids by default)"),
    Param("target_type", "string", "glob, pcre, list, grain, grain_pcre, compound or nodegroup"),
)
_EVENT_QUERY = (
    Param("tag", "string", "only tags matching this glob"),
    Param("source", "string", "only events from this source"),
    Param("since", "number", "received at or after (epoch seconds)"),
    Param("until", "number", "received before (epoch seconds)"),
    Param("limit", "integer", f"how many, newest (1 to {MAX_ITEMS}; default 50)"),
)


def _run_answer(result: Any) -> Any:
    """``reactord run --json``'s answer: the job's id, returns and summary (or, ``async``, the
    job as started)."""
    if "returns" in result:
        return {"jid": result["jid"], "returns": result["returns"], "summary": result["summary"]}
    return result


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/session",
        "read",
        "who is asking: the token's name, role, and a login's CSRF token",
        "session",
    ),
    Route("GET", "/status", "read", "the master's health (reactord status)", "status"),
    Route(
        "GET",
        "/cluster",
        "read",
        "the cluster's members and partitions (reactord cluster status)",
        "cluster.status",
    ),
    Route(
        "GET",
        "/minions",
        "read",
        "every minion: presence, grains, last seen, master (reactord minions)",
        "minions",
    ),
    Route("GET", "/keys", "read", "minion keys by state (reactord key list)", "key.list"),
    Route(
        "POST",
        "/keys/{id}/accept",
        "admin",
        "accept a minion's key (reactord key accept ID)",
        "key.accept",
        fixed={"include_rejected": True},
    ),
    Route(
        "POST", "/keys/{id}/reject", "admin", "reject a minion's key (reactord key reject ID)", "key.reject"
    ),
    Route("DELETE", "/keys/{id}", "admin", "delete a minion's key (reactord key delete ID)", "key.delete"),
    Route(
        "GET",
        "/events",
        "read",
        "logged events, newest last (reactord event list)",
        "event.list",
        _EVENT_QUERY,
    ),
    Route(
        "POST",
        "/events",
        "operate",
        "fire an event, source api (reactord event fire)",
        "event.fire",
        body=(Param("tag", "string", "the event's tag", True), Param("data", "object", "its data")),
        fixed={"source": "api"},
    ),
    Route(
        "GET",
        "/events/{id}",
        "read",
        "one event with what it caused: actions, jobs, events (reactord event show)",
        "event.show",
    ),
    Route(
        "GET",
        "/events/{id}/explain",
        "read",
        "why each rule did or did not fire for a logged event (reactord rules explain ID)",
        "rules.explain",
    ),
    Route(
        "GET",
        "/live",
        "read",
        "a live stream of events as they are logged (Server-Sent Events)",
        "live",
        (Param("tag", "string", "only tags matching this glob"),),
        doc="Each event is one `event` message whose data is the event's JSON; a client too slow to "
        "keep up gets a `dropped` message with how many it missed. A comment line is sent every 15s.",
    ),
    Route(
        "GET",
        "/state",
        "read",
        "the fleet's state: the latest event per source and tag (reactord state)",
        "state.list",
        (
            Param("tag", "string", "only tags matching this glob"),
            Param("source", "string", "only these sources (a glob)"),
            *_TARGET,
            Param("at", "number", "the state as it was then (epoch seconds), rebuilt from the log"),
        ),
    ),
    Route(
        "POST",
        "/gate",
        "read",
        "whether every targeted minion's state passes the checks (reactord gate)",
        "gate.check",
        body=(
            Param("checks", "array", "[{on: glob, when: {...}}], as in rules"),
            Param("conditions", "array", "or the CLI's words: ['minion/*/beacon/load', 'data.load1 < 2']"),
            Param("allow_stale", "boolean", "let stale or missing state pass"),
            *_TARGET,
        ),
    ),
    Route(
        "GET",
        "/rules",
        "read",
        "the rules loaded, with how often each fired (reactord rules list)",
        "rules.list",
    ),
    Route(
        "POST",
        "/rules/explain",
        "read",
        "what the rules decide for an event given whole (reactord rules explain --event)",
        "rules.explain",
        body=(Param("event", "object", "{tag, source, data, time}", True),),
    ),
    Route(
        "POST",
        "/rules/check",
        "read",
        "check a rule file: the body is its YAML text (reactord rules check FILE)",
        "rules.check",
        (Param("name", "string", "the file's name in the answer (default posted.yaml)"),),
        doc="Checked against this master's nodegroups. The CLI also warns of function names no "
        "installed module provides; the API does not (it would run a program per request).",
    ),
    Route(
        "POST",
        "/rules/reload",
        "admin",
        "reload the rule files, all or nothing (reactord rules reload)",
        "rules.reload",
    ),
    Route(
        "GET",
        "/jobs",
        "read",
        "recent jobs (reactord jobs)",
        "jobs.list",
        (Param("limit", "integer", f"how many (1 to {MAX_ITEMS}; default 50)"),),
    ),
    Route(
        "GET",
        "/jobs/{jid}",
        "read",
        "a job with each minion's return (reactord jobs show)",
        "jobs.show",
        (Param("wait", "number", "seconds to wait for the job to end"),),
    ),
    Route(
        "POST",
        "/run",
        "operate",
        "run a function on the minions a target names (reactord run)",
        "run",
        body=(
            *_TARGET,
            Param("fun", "string", "module.function", True),
            Param("args", "array", "positional arguments"),
            Param("kwargs", "object", "keyword arguments"),
            Param("timeout", "number", "seconds each minion has to return"),
            Param("batch", "string", "N or N%: so many minions at a time"),
            Param("batch_wait", "number", "seconds between a return and the next start"),
            Param("failhard", "boolean", "stop the batch at the first failure"),
            Param("async", "boolean", "answer at once with the job's id"),
        ),
        fixed={"origin": "api"},
        shape=_run_answer,
    ),
    Route(
        "GET",
        "/deadletters",
        "read",
        "actions that failed every try (reactord deadletters list)",
        "deadletters.list",
        (Param("status", "string", "open (default), resolved or all"),),
    ),
    Route(
        "POST",
        "/deadletters/{id}/retry",
        "operate",
        "retry a dead letter (reactord deadletters retry ID)",
        "deadletters.retry",
    ),
)


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 of ``ROUTES``."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.path_params
        ] + [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.doc,
                "schema": {"type": p.kind},
            }
            for p in route.query
        ]
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.op.replace('.', '_')}_{len(paths)}",
            "summary": route.summary,
            "description": (route.doc + "\n\n" if route.doc else "") + f"Needs the `{route.role}` role.",
            "x-reactord-role": route.role,
            "parameters": parameters,
            "responses": {
                "200": {"description": "the answer, as the CLI's --json gives it"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
            },
        }
        if route.body:
            operation["requestBody"] = {
                "required": any(p.required for p in route.body),
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": [p.name for p in route.body if p.required],
                            "properties": {
                                p.name: {"type": p.kind, "description": p.doc} for p in route.body
                            },
                        }
                    }
                },
            }
        elif route.op == "rules.check":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/yaml": {"schema": {"type": "string"}}},
            }
        if route.op == "live":
            operation["responses"]["200"] = {"description": "events", "content": {"text/event-stream": {}}}
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reactord master API",
            "version": __version__,
            "description": "The CLI's operations over HTTP; see docs/api.md.",
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "reactord token create --role R",
                },
                "login": {"type": "apiKey", "in": "cookie", "name": "rd_session"},
            },
            "responses": {
                "Error": {
                    "description": "refused: {error: reason}",
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
                        }
                    },
                }
            },
        },
        "security": [{"token": []}, {"login": []}],
        "paths": paths,
    }
