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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.protocol.configfile import parse_address
from reactord.protocol.errors import EncodeError, TagError
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
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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


def to_events(endpoint: Endpoint, path: str, payload: Any) -> list[tuple[str, dict[str, Any]]]:
    """The events a request becomes; ``Refused(400)`` for a body that does not fit its kind."""
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
    common = {k: payload.get(k) for k in ("receiver", "groupKey", "externalURL")}
    events = []
    for alert in payload["alerts"]:  # as many as the body limit lets in
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
        self, address: str, endpoints: dict[str, Endpoint], max_body: int, stats: Stats, emit: Emit
    ) -> None:
        self.host, self.port = parse_address(address)
        self.endpoints = endpoints
        self.max_body = max_body
        self.stats = stats
        self.emit = emit
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"hooks": self})
        server_class = _Server6 if ":" in self.host else http.server.ThreadingHTTPServer
        self._server = server_class((self.host, self.port), handler)
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
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a huge int, too deep
            raise Refused(400, f"the body is not JSON: {exc}") from None
        subpath = "/".join(segment(p) for p in parts[2:] if p)
        events = to_events(endpoint, subpath, payload)
        try:  # every event checked before the first is emitted: a request is taken whole or not at all
            for tag, data in events:
                validate_tag(tag)
                check_data(data)
        except (TagError, EncodeError) as exc:
            raise Refused(400, str(exc)) from None
        ids = self.emit(events, f"webhook/{endpoint.name}")
        self.stats.incr_labeled("webhook_events", len(ids), endpoint=endpoint.name)
        return 202, {"accepted": len(ids), "ids": ids}


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    hooks: WebhookServer
    timeout = 10  # a client that stops sending mid-body is cut off
    server_version = "reactord-webhooks"

    def do_POST(self) -> None:
        hooks = self.hooks
        try:
            status, answer = hooks.handle(self.path, self.headers, self.rfile.read)
        except Refused as exc:
            status, answer = exc.status, {"error": exc.reason}
            hooks.stats.incr(f"webhook.refused.{status}")
            log.warning("webhook %s refused (%d): %s", self.path[:100], status, exc.reason)
        except (TimeoutError, OSError):
            return
        except Exception:  # a bug: answered and logged, never a silent close
            log.exception("webhook %s failed", self.path[:100])
            status, answer = 500, {"error": "internal error"}
            hooks.stats.incr("webhook.refused.500")
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.send_error(405, "POST only")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def emit_through(loop: asyncio.AbstractEventLoop, emit: Callable[[str, dict[str, Any], str], str]) -> Emit:
    """An ``Emit`` for the HTTP threads that runs the master's emit on its event loop."""

    def run(events: list[tuple[str, dict[str, Any]]], source: str) -> list[str]:
        async def emit_all() -> list[str]:
            return [emit(tag, data, source) for tag, data in events]

        return asyncio.run_coroutine_threadsafe(emit_all(), loop).result(10)

    return run
