"""``/api/v1``: the CLI's operations over HTTP, JSON in and out (docs/api.md).

Every route is a row of ``ROUTES``: its method and path, the role it needs, the control
operation it calls (the one the CLI calls over the control socket, so an answer here is what
``--json`` prints there) and the arguments it takes from the path, the query or a JSON body.
The OpenAPI document (``/api/v1/openapi.json``) is made from the same rows, so it cannot
drift from what is served.

What a request sends is read as hostile: a query value is converted to its declared type or
refused (400); a body is a JSON object of the declared fields only, at most ``http.max_body``
bytes, within ``http.body_timeout``; the operation checks each value again as it does for
the CLI (types, 64-bit integers, finite numbers, tag globs). An operation's error keeps its
message and gets a status from its code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from reactord import __version__
from reactord.actions.kinds import KINDS
from reactord.base import jsonable
from reactord.base.checks import CheckSyntax, parse_checks
from reactord.base.errors import ControlError
from reactord.http.auth import Guard, Principal, Refusal
from reactord.http.server import json_response, read_body
from reactord.protocol.errors import RequestError
from reactord.protocol.localsock import Handler as OpHandler
from reactord.protocol.localsock import Stream
from reactord.rulefiles import check_rule_files
from reactord.store.tokens import ROLES

log = logging.getLogger("reactord.http")

PREFIX = "/api/v1"
#: The most items one list answer holds (``limit`` above it is refused).
MAX_ITEMS = 10_000
#: A control error's code -> the HTTP status it is answered with.
STATUS = {
    "bad_request": 400,
    "not_found": 404,
    "not_clustered": 404,
    "invalid_rules": 422,
    "unavailable": 503,
}


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


class Api:
    """The API's handlers over the master's control operations."""

    def __init__(
        self,
        guard: Guard,
        ops: dict[str, OpHandler],
        *,
        max_body: int,
        body_timeout: float,
        nodegroups: dict[str, str],
        live: Callable[[web.Request, Principal], Awaitable[web.StreamResponse]],
    ) -> None:
        self.guard = guard
        self.ops = ops
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.nodegroups = nodegroups
        self.live = live
        self._checking = asyncio.Semaphore(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/openapi.json", self.openapi)
        for route in ROUTES:
            app.router.add_route(route.method, PREFIX + route.path, self._handler(route))

    def _handler(self, route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            principal = self.guard.require(request, route.role)
            if route.op == "live":
                return await self.live(request, principal)
            if route.op == "session":
                return json_response(_session(principal))
            if route.op == "rules.check":
                return json_response(await self._rules_check(request))
            args = await self._args(route, request)
            result = await self._call(route, args)
            if isinstance(result, Stream):
                return await _json_list(request, result.items)
            if route.method != "GET":
                log.info("api: %s by %s", f"{route.method} {PREFIX}{route.path}", principal.label)
            return json_response(route.shape(result) if route.shape else result)

        handle.__name__ = route.op.replace(".", "_")
        return handle

    async def _args(self, route: Route, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(route.fixed)
        for name in route.path_params:
            args[name] = request.match_info[name]
        if route.path in ("/keys/{id}/accept", "/keys/{id}/reject", "/keys/{id}"):
            args["ids"] = [args.pop("id")]  # exactly this key: the API takes no globs here
        for param in route.query:
            text = request.query.get(param.name)
            if text is not None:
                args[param.name] = _converted(param, text)
        if route.op in ("event.list", "jobs.list"):
            limit = args.setdefault("limit", 50)
            if not 1 <= limit <= MAX_ITEMS:
                raise Refusal(400, f"limit is 1 to {MAX_ITEMS}")
        if route.body:
            args.update(await self._body(route, request))
        elif route.method != "GET" and request.content_length:
            raise Refusal(400, "this request takes no body")
        return args

    async def _body(self, route: Route, request: web.Request) -> dict[str, Any]:
        raw = await read_body(request, self.max_body, self.body_timeout)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise Refusal(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Refusal(400, "the body is a JSON object")
        known = {p.name: p for p in route.body}
        unknown = sorted(k for k in body if k not in known)
        if unknown:
            raise Refusal(400, f"unknown field {unknown[0][:64]!r}; this request takes {', '.join(known)}")
        for param in route.body:
            if param.required and body.get(param.name) is None:
                raise Refusal(400, f"missing field {param.name!r}")
        if "conditions" in body:  # the gate's checks in the CLI's words
            words = body.pop("conditions")
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or len(words) > 100:
                raise Refusal(400, "conditions is a list of at most 100 strings")
            try:
                body["checks"] = parse_checks(tuple(words))
            except CheckSyntax as exc:
                raise Refusal(400, str(exc)) from None
        return body

    async def _call(self, route: Route, args: dict[str, Any]) -> Any:
        try:
            return await self.ops[route.op](args)
        except ControlError as exc:
            raise Refusal(STATUS.get(exc.code, 409), str(exc)) from None
        except RequestError as exc:
            raise Refusal(409, str(exc)) from None

    async def _rules_check(self, request: web.Request) -> dict[str, Any]:
        """The posted YAML checked as ``rules check FILE --json`` checks a file named
        ``?name=`` (default ``posted.yaml``), against this master's nodegroups."""
        name = request.query.get("name", "posted.yaml")
        if not name or "/" in name or name.startswith(".") or len(name) > 128:
            raise Refusal(400, "name is a file name (no folders)")
        raw = await read_body(request, self.max_body, self.body_timeout)
        async with self._checking:  # parsing a large file costs seconds: off the loop, one at a time
            return await asyncio.to_thread(self._check_text, name, raw)

    def _check_text(self, name: str, raw: bytes) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="reactord-check-") as folder:
            path = Path(folder) / name
            path.write_bytes(raw)
            _, verdict = check_rule_files([path], self.nodegroups, KINDS)

        def named(value: Any) -> Any:  # the file as the client named it, not where it was put
            return value.replace(f"{folder}/", "") if isinstance(value, str) else value

        return {k: [named(f) for f in v] if k == "files" else named(v) for k, v in verdict.items()}

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(openapi_document())


async def _json_list(request: web.Request, items: AsyncIterator[Any]) -> web.StreamResponse:
    """A list answer (``event.list``) written item by item as the log is read, as the CLI
    reads it over the control socket: never held whole in memory, however large its events.
    An error after the first byte cuts the connection (the client sees incomplete JSON)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    await response.write(b"[")
    count = 0
    try:
        async for item in items:
            await response.write((b"," if count else b"") + jsonable.to_json(item).encode())
            count += 1
            if count >= MAX_ITEMS:
                break
    except (ControlError, RequestError) as exc:
        log.info("http %s: the list stopped after %d items: %s", request.raw_path[:200], count, exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        if hasattr(items, "aclose"):
            await items.aclose()
    await response.write(b"]")
    await response.write_eof()
    return response


def _converted(param: Param, text: str) -> Any:
    """A query value as its declared type, or 400 naming it."""
    try:
        if param.kind == "integer":
            if not text.lstrip("-").isascii() or not text.lstrip("-").isdigit() or len(text) > 20:
                raise ValueError
            return int(text)
        if param.kind == "number":
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
        if param.kind == "boolean":
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
    except (ValueError, KeyError):
        raise Refusal(
            400, f"{param.name} must be {'an' if param.kind == 'integer' else 'a'} {param.kind}"
        ) from None
    if len(text) > 1024:
        raise Refusal(400, f"{param.name} is over 1024 characters")
    return text


def _session(principal: Principal) -> dict[str, Any]:
    token = principal.token
    return {
        "name": token.name,
        "token_id": token.id,
        "role": token.role,
        "roles": [r for r in ROLES if token.allows(r)],
        "expires": token.expires,
        "login": principal.session is not None,
        "csrf": principal.session.csrf if principal.session is not None else None,
        "version": __version__,
    }


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
