"""Webhooks in: an HTTP listener that turns authenticated requests into events.

``POST /hooks/<name>[/<path>]`` for each configured endpoint. Every endpoint authenticates
(an HMAC-SHA256 signature header, GitHub style ``sha256=<hex>``, or a bearer token, both
compared in constant time); a request that does not, or that is too large, is refused with
its status code and counted, and nothing reaches the bus. Kinds:

- ``json``: the body (an object) is the data; the tag is ``webhook/<name>[/<path>]``
- ``cloudevents``: a CloudEvents 1.0 event in structured JSON mode; the tag is
  ``webhook/<name>/<type>``, the data ``{"ce": {id, source, type, time, subject}, "data": ...}``
- ``alertmanager``: Prometheus Alertmanager's webhook; one event per alert, tagged
  ``webhook/<name>/<status>`` (``firing`` or ``resolved``), with labels and annotations

What one request may cost is bounded: its body (``max_body``), the events it becomes
(``max_events``, 413 beyond: checked before any event is built), the endpoint's budget of
events and bytes per second (429 with ``Retry-After``), the requests handled at once
(``max_connections``; more wait in the listen queue), and the master's state (503 with
``Retry-After`` while its action queue or its disk is full). A request's events are written
in one transaction, on the master's loop, or none of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import logging
import math
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.budget import Budgets
from reactord.protocol.configfile import parse_address
from reactord.protocol.errors import EncodeError, StorageFull, TagError
from reactord.protocol.events import check_data
from reactord.protocol.tags import validate_tag
from reactord.stats import Stats

log = logging.getLogger("reactord.webhooks")

KINDS = ("json", "cloudevents", "alertmanager")
_LENGTH = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit also takes "²"
_SEGMENT_SAFE = re.compile(r"[^A-Za-z0-9_.:@=+,~%-]+")

Emit = Callable[[list[tuple[str, dict[str, Any]]], str], list[str]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str
    secret: bytes | None
    token: str | None


class Refused(Exception):
    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class Busy(Exception):
    """The master cannot take events now (its action queue or its disk is full): 503."""


def segment(text: str) -> str:
    return _SEGMENT_SAFE.sub("_", text).strip("_")[:64] or "unknown"


def authenticate(endpoint: Endpoint, headers: Any, body: bytes) -> None:
    """Raise ``Refused(401)`` unless the request carries the endpoint's signature or token."""
    if endpoint.secret is not None:
        given = headers.get("X-Hub-Signature-256") or headers.get("X-Signature-256") or ""
        expected = "sha256=" + hmac.new(endpoint.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Refused(401, "bad or missing signature")
    if endpoint.token is not None:
        given = headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {endpoint.token}".encode()):
            raise Refused(401, "bad or missing bearer token")


def to_events(
    endpoint: Endpoint, path: str, payload: Any, max_events: int = 1000
) -> list[tuple[str, dict[str, Any]]]:
    """The events a request becomes; ``Refused(400)`` for a body that does not fit its kind,
    ``Refused(413)`` for one that would become more than ``max_events`` events."""
    base = f"webhook/{endpoint.name}"
    if endpoint.kind == "json":
        tag = f"{base}/{path}" if path else base
        return [(tag, payload if isinstance(payload, dict) else {"body": payload})]
    if endpoint.kind == "cloudevents":
        if not isinstance(payload, dict) or payload.get("specversion") != "1.0":
            raise Refused(400, "not a CloudEvents 1.0 event in structured JSON mode")
        missing = [k for k in ("id", "source", "type") if not isinstance(payload.get(k), str)]
        if missing:
            raise Refused(400, f"CloudEvents attributes missing: {', '.join(missing)}")
        ce = {k: payload.get(k) for k in ("id", "source", "type", "time", "subject", "datacontenttype")}
        return [(f"{base}/{segment(payload['type'])}", {"ce": ce, "data": payload.get("data")})]
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise Refused(400, "not an Alertmanager webhook (no alerts list)")
    if len(payload["alerts"]) > max_events:
        raise Refused(
            413, f"{len(payload['alerts'])} alerts in one request; at most {max_events} (webhooks.max_events)"
        )
    common = {k: payload.get(k) for k in ("receiver", "groupKey", "externalURL")}
    events = []
    for alert in payload["alerts"]:
        if not isinstance(alert, dict):
            raise Refused(400, "an alert is not an object")
        status = segment(str(alert.get("status", payload.get("status", "unknown"))))
        data = {
            k: alert.get(k)
            for k in ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint")
        }
        events.append((f"{base}/{status}", {**data, **common}))
    return events


class WebhookServer:
    """A threaded HTTP server; events go to the master's loop through ``emit``."""

    def __init__(
        self,
        address: str,
        endpoints: dict[str, Endpoint],
        max_body: int,
        stats: Stats,
        emit: Emit,
        *,
        budgets: Budgets | None = None,
        max_events: int = 1000,
        max_connections: int = 64,
    ) -> None:
        self.host, self.port = parse_address(address)
        self.endpoints = endpoints
        self.max_body = max_body
        self.stats = stats
        self.emit = emit
        self.budgets = budgets
        self.max_events = max_events
        self.slots = threading.BoundedSemaphore(max_connections)
        self._server: _Bounded | None = None

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"hooks": self})
        server_class = _Server6 if ":" in self.host else _Bounded
        self._server = server_class((self.host, self.port), handler)
        self._server.hooks = self
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True).start()
        host = f"[{self.host}]" if ":" in self.host else self.host
        log.info("webhooks on http://%s:%d/hooks/<name>: %s", host, self.port, ", ".join(self.endpoints))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, path: str, headers: Any, read: Callable[[int], bytes]) -> tuple[int, dict[str, Any]]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or parts[0] != "hooks" or parts[1] not in self.endpoints:
            raise Refused(404, "no such webhook endpoint")
        endpoint = self.endpoints[parts[1]]
        length = headers.get("Content-Length")
        if length is None or not _LENGTH.fullmatch(length):
            raise Refused(411, "a Content-Length is required")
        if int(length) > self.max_body:
            raise Refused(413, f"the body is over {self.max_body} bytes")
        body = read(int(length))
        authenticate(endpoint, headers, body)
        source = f"webhook/{endpoint.name}"
        budgets = self.budgets  # after authentication: nobody else can spend an endpoint's budget
        if budgets is not None and not budgets.admit(source, len(body)):
            raise Refused(429, "over this endpoint's budget (limits)", budgets.wait_for(source))
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a huge int, too deep
            raise Refused(400, f"the body is not JSON: {exc}") from None
        subpath = "/".join(segment(p) for p in parts[2:] if p)
        events = to_events(endpoint, subpath, payload, self.max_events)
        if len(events) > self.max_events:
            raise Refused(413, f"this request becomes {len(events)} events; at most {self.max_events}")
        try:  # every event checked before the first is emitted: a request is taken whole or not at all
            for tag, data in events:
                validate_tag(tag)
                check_data(data)
        except (TagError, EncodeError) as exc:
            raise Refused(400, str(exc)) from None
        if budgets is not None:
            budgets.charge(source, len(events))
        try:
            ids = self.emit(events, source)
        except Busy as exc:
            raise Refused(503, str(exc), 5.0) from None
        except StorageFull as exc:
            raise Refused(503, f"cannot store events now: {exc}", 5.0) from None
        self.stats.incr_labeled("webhook_events", len(ids), endpoint=endpoint.name)
        return 202, {"accepted": len(ids), "ids": ids}


class _Bounded(http.server.ThreadingHTTPServer):
    """At most ``hooks.slots`` requests at once: the accept loop waits for a free slot, and
    further connections wait in the kernel's listen queue (bounded threads and memory)."""

    hooks: WebhookServer
    request_queue_size = 128  # connections waiting for a slot, in the kernel

    def process_request(self, request: Any, client_address: Any) -> None:
        self.hooks.slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.hooks.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.hooks.slots.release()


class _Server6(_Bounded):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    hooks: WebhookServer
    timeout = 10  # a client that stops sending mid-body is cut off
    server_version = "reactord-webhooks"

    def do_POST(self) -> None:
        hooks = self.hooks
        retry_after: float | None = None
        try:
            status, answer = hooks.handle(self.path, self.headers, self.rfile.read)
        except Refused as exc:
            status, answer = exc.status, {"error": exc.reason}
            hooks.stats.incr(f"webhook.refused.{status}")
            log.warning("webhook %s refused (%d): %s", self.path[:100], status, exc.reason)
            retry_after = exc.retry_after
        except (TimeoutError, OSError):
            return
        except Exception:  # a bug: answered and logged, never a silent close
            log.exception("webhook %s failed", self.path[:100])
            status, answer = 500, {"error": "internal error"}
            hooks.stats.incr("webhook.refused.500")
        data = json.dumps(answer).encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", str(max(1, math.ceil(retry_after))))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.send_error(405, "POST only")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def emit_through(loop: asyncio.AbstractEventLoop, emit: Emit) -> Emit:
    """An ``Emit`` for the HTTP threads that runs the master's emit on its event loop."""

    def run(events: list[tuple[str, dict[str, Any]]], source: str) -> list[str]:
        async def emit_all() -> list[str]:
            return emit(events, source)

        return asyncio.run_coroutine_threadsafe(emit_all(), loop).result(10)

    return run
