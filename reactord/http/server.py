"""The master's one HTTP server, on aiohttp, in the master's event loop.

Each listening address is one aiohttp application with the parts configured for it:
``http.address`` serves the API (``/api/v1``), the dashboard (``/ui/``), webhooks
(``/hooks/<name>``) and ``/metrics``; the older ``webhooks.address`` and ``metrics.address``
still serve webhooks only, or metrics only. Handlers run on the loop that runs the master, so
they read and write its parts directly, between two of its other steps, never at the same time.

What a client may cost is bounded here, before any handler runs: connections open at once
(``http.max_connections``: one more is closed at once, counted), the time to send a request's
head (``header_timeout``, which is also how long an idle connection stays open), the head's
size (aiohttp's limits: 8 KiB a line, 128 fields), the time and size of a body (``read_body``).
Every answer carries the headers of ``SECURITY_HEADERS``; a handler's bug is answered 500 and
logged, never a dropped connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from reactord.base import jsonable
from reactord.base.stats import Stats
from reactord.http.auth import Refusal
from reactord.protocol.configfile import parse_address
from reactord.protocol.errors import ConfigError

log = logging.getLogger("reactord.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Adds a part's routes to an application.
Part = Callable[[web.Application], None]

#: On every answer. The dashboard's pages load scripts and styles from this server only (no
#: inline script, no eval, no other origin), may not be framed, and send no referrer.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin: no referrer to another site; with no-referrer a browser sends "Origin: null"
    # with a form's POST, and the login form's origin could not be checked
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_body: int = 1 << 20
    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 10.0


@dataclass(slots=True)
class Site:
    """One listening address and the parts it serves, by what the log calls them."""

    address: str
    parts: dict[str, Part] = field(default_factory=dict)
    tls: bool = False  # HTTPS with the server's certificate (http.address only)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as the CLI's ``--json`` writes it (NaN as null, bytes as base64: ``jsonable``)."""
    return web.Response(
        text=jsonable.to_json(value), status=status, content_type="application/json", headers=headers
    )


def refusal_response(refusal: Refusal) -> web.Response:
    headers = {}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    if refusal.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reactord"'
    response = json_response({"error": refusal.reason}, refusal.status, headers)
    response.force_close()  # the request's body may not have been read: never parse it as a request
    return response


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The request's body: at most ``limit`` bytes (413, before any byte is read when its
    Content-Length says so), all of it within ``timeout`` seconds (408: a slow client)."""
    length = request.content_length
    if length is not None and length > limit:
        raise Refusal(413, f"the body is over {limit} bytes")
    try:
        async with asyncio.timeout(timeout):
            if length is not None:
                return await request.content.readexactly(length) if length else b""
            body = bytearray()
            while chunk := await request.content.read(65536):
                body += chunk
                if len(body) > limit:
                    raise Refusal(413, f"the body is over {limit} bytes")
            return bytes(body)
    except TimeoutError:
        raise Refusal(408, f"the body did not arrive within {timeout:g}s") from None
    except asyncio.IncompleteReadError:
        raise Refusal(400, "the body ended before its Content-Length") from None


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``SECURITY_HEADERS`` on every answer, streams included (set as its head is sent)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def _log_refusal(request: web.Request, refusal: Refusal) -> None:
    """One line per refusal; who was refused and why (the detail the client is not told).
    Refused credentials and roles are warnings, each kind its own call site (so a flood of
    one is summarized without hiding the other); a request the operation refused is info."""
    where = (request.method, request.raw_path[:200], request.remote, refusal.detail or refusal.reason)
    if refusal.status == 401:
        log.warning("http %s %s from %s refused (401): %s", *where)
    elif refusal.status == 403:
        log.warning("http %s %s from %s refused (403): %s", *where)
    elif refusal.status == 429:
        log.warning("http %s %s from %s refused (429): %s", *where)
    else:
        log.info("http %s %s from %s: %d %s", *where[:3], refusal.status, where[3])


def _guard_middleware(stats: Stats) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        stats.incr("http.requests")
        try:
            response = await handler(request)
        except Refusal as refusal:
            stats.incr(f"http.refused.{refusal.status}")
            _log_refusal(request, refusal)
            response = refusal_response(refusal)
        except web.HTTPException as exc:  # aiohttp's own: 404, 405, 413 from its parser, ...
            stats.incr(f"http.refused.{exc.status}")
            response = json_response({"error": exc.reason}, exc.status)
            for name in ("Allow", "Location", "Set-Cookie"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            if exc.status >= 400:
                response.force_close()  # a body it came with may not have been read
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("http %s %s failed", request.method, request.raw_path[:200])
            stats.incr("http.refused.500")
            response = json_response({"error": "internal error"}, 500)
        return response

    return guard


class HttpServer:
    """The sites of one master, started and stopped with it."""

    def __init__(
        self,
        sites: list[Site],
        limits: Limits,
        stats: Stats,
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.sites = sites
        self.limits = limits
        self.stats = stats
        self.tls = tls
        self._runners: list[web.AppRunner] = []
        self.bound: dict[str, tuple[str, int]] = {}  # address -> (host, port) bound

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of ``tls`` (certificate chain, key): a file that cannot be used, or a
        key others may read, is a ``ConfigError`` naming it."""
        if self.tls is None:
            return None
        cert, key = self.tls
        try:
            if key.stat().st_mode & 0o077:
                raise ConfigError(str(key), "http.tls_key", "group or others may read it: chmod 600")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(cert), str(key))
        except OSError as exc:  # ssl.SSLError included: not PEM, a key of another certificate
            raise ConfigError(str(cert), "http.tls_cert", f"cannot be used with {key}: {exc}") from None
        return context

    async def start(self) -> None:
        tls_context = self._ssl_context()
        for site in self.sites:
            context = tls_context if site.tls else None
            app = web.Application(
                middlewares=[_guard_middleware(self.stats)], client_max_size=self.limits.max_body
            )
            app.on_response_prepare.append(_secure_headers)
            for add_routes in site.parts.values():
                add_routes(app)
            runner = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                keepalive_timeout=self.limits.header_timeout,
                # after a refusal with a body left unread, what still comes is read (so that the
                # client sees the answer, not a reset) for this long at most, then it is cut off
                lingering_time=2.0,
                shutdown_timeout=2.0,
            )
            await runner.setup()
            self._limit_connections(runner)
            self._runners.append(runner)
            host, port = parse_address(site.address)
            tcp = web.TCPSite(runner, host, port, ssl_context=context, backlog=128, reuse_address=True)
            await tcp.start()
            self.bound[site.address] = (host, port)
            scheme = "https" if context is not None else "http"
            shown = f"[{host}]" if ":" in host else host
            log.info("http on %s://%s:%d: %s", scheme, shown, port, "; ".join(site.parts))

    def _limit_connections(self, runner: web.AppRunner) -> None:
        """The runner's server as a ``_Server``: bounded connections, framing errors in one line."""
        server = runner.server
        assert server is not None
        server.__class__ = _Server
        assert isinstance(server, _Server)
        server.limit = self.limits.max_connections
        server.stats = self.stats

    async def close(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


class _Protocol(RequestHandler):
    """aiohttp's connection handler, but a request it cannot parse (bad framing, a head too
    large, a bad Content-Length) is answered like every other refusal: JSON, counted, one log
    line (aiohttp's own logs a traceback per bad request: a flood of them fills a disk)."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started: it cannot become an error")
        manager = self._manager
        if isinstance(manager, _Server):
            manager.stats.incr(f"http.refused.{status}")
        reason = str(getattr(exc, "message", "") or message or exc or "").strip().splitlines()
        shown = reason[0][:200] if reason else HTTPStatus(status).phrase
        log.warning("http: a bad request from %s (%d): %s", request.remote, status, shown)
        response = json_response({"error": f"bad HTTP request: {shown}"}, status, dict(SECURITY_HEADERS))
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's server with at most ``limit`` connections open (one more is closed at once,
    counted) and ``_Protocol`` for each connection."""

    limit: int
    stats: Stats

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self.limit:
            self.stats.incr("http.refused.connections")
            transport.abort()
