"""Serving Prometheus metrics over HTTP (off unless a daemon's ``metrics.address`` is set)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from reactord.protocol import configfile as cf

log = logging.getLogger("reactord.metrics")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The ``metrics:`` section of master.yaml and minion.yaml."""

    address: str = cf.option("", cf.as_address, "host:port of /metrics (Prometheus); empty: off")


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
        self.host, self.port = cf.parse_address(address)
        self.collector = collector
        self.registry = registry_of(collector)
        self._server: Any = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        self.collector.refresh()
        self._server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        host = f"[{self.host}]" if ":" in self.host else self.host
        log.info("metrics on http://%s:%d/metrics", host, self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def registry_of(collector: Snapshot) -> Any:
    """A prometheus_client registry of one snapshot (imported here: only in a daemon that
    serves metrics)."""
    from prometheus_client import CollectorRegistry

    # The snapshot has no fixed list of names to describe; registered "without names" it is
    # still collected when a scrape asks for some names only (``?name[]=...``).
    registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
    registry.register(collector)
    return registry
