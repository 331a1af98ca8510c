"""``/api/v1``: the CLI's operations over HTTP, JSON in and out (docs/api.md).

The routes are the rows of ``reactord.http.routes.ROUTES``; this module serves them: each
request's arguments read and checked, its role checked, the control operation called and
its answer written (a list item by item). ``/api/v1/openapi.json`` describes the same rows.

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
from pathlib import Path
from typing import Any

from aiohttp import web

from reactord import __version__
from reactord.actions.kinds import KINDS
from reactord.base import jsonable
from reactord.base.checks import CheckSyntax, parse_checks
from reactord.base.errors import ControlError
from reactord.http.auth import Guard, Principal, Refusal
from reactord.http.routes import MAX_ITEMS, PREFIX, ROUTES, Param, Route, openapi_document
from reactord.http.server import json_response, read_body
from reactord.protocol.errors import RequestError
from reactord.protocol.localsock import Handler as OpHandler
from reactord.protocol.localsock import Stream
from reactord.rulefiles import check_rule_files
from reactord.store.tokens import ROLES

log = logging.getLogger("reactord.http")

#: A control error's code -> the HTTP status it is answered with.
STATUS = {
    "bad_request": 400,
    "not_found": 404,
    "not_clustered": 404,
    "invalid_rules": 422,
    "unavailable": 503,
}


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
