"""The HTTP server a master.yaml describes: which parts listen on which address.

``http.address`` serves everything configured: the API and the dashboard, webhooks when
endpoints are configured, /metrics. The older keys still work, each a listener of its own
part only: ``webhooks.address`` (webhooks) and ``metrics.address`` (metrics, on every path as
before). Two keys naming the same address share its listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reactord.base.config import MasterConfig
from reactord.base.stats import Stats
from reactord.http.api import Api
from reactord.http.auth import Guard, Sessions
from reactord.http.hooks import Hooks
from reactord.http.live import Listeners, Live
from reactord.http.scrape import Scrape
from reactord.http.server import HttpServer, Limits, Site
from reactord.http.ui import Ui
from reactord.protocol.localsock import Handler
from reactord.store.tokens import TokenStore
from reactord.webhooks import WebhookIntake

log = logging.getLogger("reactord.http")


def http_server(
    config: MasterConfig,
    *,
    ops: dict[str, Handler],
    tokens: TokenStore,
    stats: Stats,
    clock: Callable[[], float],
    bus: Listeners,
    intake: WebhookIntake | None,
    metrics_registry: Any | None,
) -> HttpServer | None:
    """The server, or None when no address is configured."""
    http = config.http
    limits = Limits(http.max_body, http.max_connections, http.header_timeout, http.body_timeout)
    guard = Guard(tokens, Sessions(http.session_ttl, http.max_sessions), stats, clock)
    sites: dict[str, Site] = {}
    # what each part is called in the log line of its listener
    hooks_label = "webhooks /hooks/<name>: " + ", ".join(intake.endpoints if intake is not None else [])

    def site(address: str) -> Site:
        return sites.setdefault(address, Site(address))

    if http.address:
        main = site(http.address)
        main.tls = http.tls_cert is not None
        live = Live(bus, guard, http.live_clients, stats)
        api = Api(
            guard,
            ops,
            max_body=http.max_body,
            body_timeout=http.body_timeout,
            nodegroups=config.nodegroups,
            live=live.stream,
        )
        main.parts["api /api/v1"] = api.add_routes
        main.parts["dashboard /ui/"] = Ui(guard, http.body_timeout).add_routes
        if intake is not None:
            main.parts[hooks_label] = Hooks(intake, http.body_timeout).add_routes
        if metrics_registry is not None:
            scrape = Scrape(metrics_registry, guard if http.metrics_token else None)
            main.parts["metrics /metrics"] = scrape.add_routes
    if config.webhooks.address and intake is not None:
        if config.webhooks.address != http.address:  # its own listener, plain HTTP as before
            log.warning("webhooks.address is deprecated: set http.address (docs/api.md) and drop it")
        site(config.webhooks.address).parts.setdefault(
            hooks_label, Hooks(intake, http.body_timeout).add_routes
        )
    if config.metrics.address and metrics_registry is not None:
        if config.metrics.address != http.address:
            log.warning("metrics.address is deprecated in master.yaml: /metrics is on http.address")
        scrape = Scrape(metrics_registry, None, any_path=config.metrics.address != http.address)
        site(config.metrics.address).parts.setdefault("metrics /metrics", scrape.add_routes)
    if not sites:
        return None
    tls = (http.tls_cert, http.tls_key) if http.tls_cert is not None and http.tls_key is not None else None
    return HttpServer(list(sites.values()), limits, stats, tls=tls)
