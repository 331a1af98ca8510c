"""``/ui/``: the dashboard (docs/ui.md). Static pages and small scripts shipped in the package
(``reactord/http/static``): no build step, nothing loaded from another origin, no inline
script (the Content-Security-Policy forbids it). The pages read ``/api/v1`` with the login's
cookie and put every value into the page as text, never as markup.

A login is a token typed into ``/ui/login``: the answer sets the ``rd_session`` cookie
(HttpOnly, SameSite=Strict, Secure over HTTPS). Failed logins are limited per client address
(``LOGIN_FAILURES`` a minute, 429 beyond).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import web

from reactord.http.auth import SESSION_COOKIE, Guard, Refusal, check_origin
from reactord.http.server import read_body

log = logging.getLogger("reactord.http")

STATIC = Path(__file__).parent / "static"
PAGES = ("overview", "minions", "events", "event", "rules", "jobs", "job", "deadletters", "state")
LOGIN_FAILURES = 10
_CLIENTS_TRACKED = 10_000
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


class Ui:
    def __init__(self, guard: Guard, body_timeout: float) -> None:
        self.guard = guard
        self.body_timeout = body_timeout
        self._failures: OrderedDict[str, list[float]] = OrderedDict()  # address -> failure times

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.root)
        app.router.add_get("/ui", self.root)
        app.router.add_get("/ui/login", self.login_page)
        app.router.add_post("/ui/login", self.login)
        app.router.add_post("/ui/logout", self.logout)
        app.router.add_get("/ui/static/{name}", self.asset)
        app.router.add_get("/ui/", self.page)
        app.router.add_get("/ui/{page}", self.page)

    async def root(self, request: web.Request) -> web.StreamResponse:
        return _redirect("/ui/")

    async def page(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("page", "overview")
        if name not in PAGES:
            raise web.HTTPNotFound()
        try:
            self.guard.identify(request)
        except Refusal:
            return _redirect("/ui/login")
        return _file(STATIC / f"{name}.html")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return _file(STATIC / "login.html")

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
            raise web.HTTPNotFound()
        return _file(path, cache=True)

    async def login(self, request: web.Request) -> web.StreamResponse:
        check_origin(request)
        address = request.remote or "?"
        now = time.monotonic()
        recent = [t for t in self._failures.get(address, []) if now - t < 60]
        if len(recent) >= LOGIN_FAILURES:
            raise Refusal(429, "too many failed logins: wait a minute", f"{len(recent)} failed logins", 60)
        form = parse_qs((await read_body(request, 8192, self.body_timeout)).decode("utf-8", "replace"))
        presented = (form.get("token") or [""])[0].strip()
        token, why = self.guard.tokens.check(presented, self.guard.clock())
        if token is None:
            self._failed(address, [*recent, now])
            self.guard.stats.incr("http.refused.401")
            log.warning("http login from %s refused: %s", address, why)
            return _redirect("/ui/login?failed=1")
        session = self.guard.sessions.create(token.id, self.guard.clock())
        log.info("http login from %s: token %s (%s, %s)", address, token.name, token.id, token.role)
        response = _redirect("/ui/")
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=int(self.guard.sessions.ttl),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        principal = self.guard.require(request, "read")  # a write: the CSRF token is checked
        if principal.session is not None:
            self.guard.sessions.drop(principal.session.id)
        response = web.json_response({"logged_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def _failed(self, address: str, times: list[float]) -> None:
        self._failures[address] = times[-LOGIN_FAILURES:]
        self._failures.move_to_end(address)
        while len(self._failures) > _CLIENTS_TRACKED:
            self._failures.popitem(last=False)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _file(path: Path, *, cache: bool = False) -> web.StreamResponse:
    headers = {"Content-Type": _TYPES[path.suffix] + ("; charset=utf-8" if path.suffix != ".png" else "")}
    # static files: revalidated at each load (an upgrade never mixes old and new scripts)
    headers["Cache-Control"] = "no-cache" if cache else "no-store"
    return web.Response(body=path.read_bytes(), headers=headers)
