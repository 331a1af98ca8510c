"""``tcp_port`` and ``http``: is a service reachable, how fast, and does it answer right."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar

from minion.beacons.base import Report, subject
from minion.options import Options
from reactord.protocol.configfile import parse_address
from reactord.protocol.patterns import compile_regex


class TcpPortBeacon:
    """TCP ports: reachable or not, and the connect time.

    Options: ``targets`` (``host:port`` list), ``timeout`` (per connect; default 3s).
    Data: ``host port reachable latency_ms error``; subject: ``host_port``. Onchange reports
    when ``reachable`` changes.
    """

    default_interval: ClassVar[float] = 30.0

    def __init__(self, options: Options) -> None:
        try:
            self.targets = [
                parse_address(t, default_host=None) for t in options.text_list("targets", required=True)
            ]
        except ValueError as exc:
            raise options.fail("targets", str(exc)) from None
        self.timeout = options.duration("timeout", 3.0, 0.01)

    def poll(self) -> list[Report]:
        reports = []
        for host, port in self.targets:
            started = time.monotonic()
            error = None
            try:
                with socket.create_connection((host, port), timeout=self.timeout):
                    pass
            except OSError as exc:
                error = exc.strerror or str(exc)
            latency = round((time.monotonic() - started) * 1000, 2)
            data: dict[str, Any] = {
                "host": host,
                "port": port,
                "reachable": error is None,
                "latency_ms": latency if error is None else None,
                "error": error,
            }
            reports.append(Report(subject(f"{host}_{port}"), data, state=error is None))
        return reports


class HttpBeacon:
    """HTTP endpoints: status code, latency, and an optional body match.

    Options: ``urls`` (each a URL, or ``{url, expect_status (default 200), match (a
    regular expression the body must contain), method (GET or HEAD)}``), ``timeout``
    (default 5s), ``max_body`` (bytes read for matching; default 64 KiB).
    Data: ``url status ok latency_ms matched error``; subject: the URL. ``ok`` means the
    expected status and, with ``match``, a matching body. Onchange reports when ``ok`` changes.
    """

    default_interval: ClassVar[float] = 30.0

    def __init__(self, options: Options) -> None:
        raw = options.raw_value("urls")
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise options.fail("urls", "expected a list of URLs or {url, expect_status, match}")
        self.checks = [self._check(options, item) for item in raw]
        self.timeout = options.duration("timeout", 5.0, 0.01)
        self.max_body = options.integer("max_body", 64 * 1024, 0, 16 << 20)

    @staticmethod
    def _check(options: Options, item: Any) -> dict[str, Any]:
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise options.fail("urls", f"bad entry {item!r}")
        if not item["url"].startswith(("http://", "https://")):
            raise options.fail("urls", f"{item['url']!r} is not an http(s) URL")
        extra = set(item) - {"url", "expect_status", "match", "method"}
        if extra:
            raise options.fail("urls", f"unknown key {sorted(extra)[0]!r}")
        try:  # RE2: the body is the remote server's text; matching stays linear in it
            pattern = compile_regex(item["match"], max_text=1 << 30) if item.get("match") else None
        except ValueError as exc:
            raise options.fail("urls", f"bad match regex: {exc}") from None
        method = item.get("method", "GET")
        if method not in ("GET", "HEAD"):
            raise options.fail("urls", "method: expected GET or HEAD")
        return {
            "url": item["url"],
            "expect": int(item.get("expect_status", 200)),
            "match": pattern,
            "method": method,
        }

    def poll(self) -> list[Report]:
        return [self._probe(check) for check in self.checks]

    def _probe(self, check: dict[str, Any]) -> Report:
        started = time.monotonic()
        status, body, error = None, b"", None
        request = urllib.request.Request(check["url"], method=check["method"])
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # http(s) checked at load
                status, body = response.status, response.read(self.max_body)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read(self.max_body)
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        latency = round((time.monotonic() - started) * 1000, 2)
        matched = None
        if check["match"] is not None and status is not None:
            matched = check["match"].search(body.decode(errors="replace"))
        ok = status == check["expect"] and matched is not False
        data = {
            "url": check["url"],
            "status": status,
            "ok": ok,
            "latency_ms": latency,
            "matched": matched,
            "error": error,
        }
        return Report(subject(check["url"].split("://", 1)[1]), data, state=ok)
