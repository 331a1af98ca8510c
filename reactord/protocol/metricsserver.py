"""Serving Prometheus metrics over HTTP (off unless a daemon's ``metrics.address`` is set)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9510`` for IPv6) into its parts; ``ValueError`` if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Snapshot:
    """What a scrape returns: metric families built on the daemon's own thread (``refresh``),
    read by the HTTP server's thread (``collect``), so no scrape ever touches live state."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.families: list[Any] = []

    def refresh(self) -> None:
        self.families = list(self.build())

    def collect(self) -> Any:
        return iter(self.families)


class MetricsServer:
    """The ``/metrics`` endpoint of one daemon, for one registry of collectors."""

    def __init__(self, address: str, collector: Snapshot) -> None:
        self.host, self.port = parse_address(address)
        self.collector = collector
        # The snapshot has no fixed list of names to describe; registered "without names" it
        # is still collected when a scrape asks for some names only (``?name[]=...``).
        self.registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
        self.registry.register(collector)
        self._server: Any = None

    def start(self) -> None:
        self.collector.refresh()
        self._server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
