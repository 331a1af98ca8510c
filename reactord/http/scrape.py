"""``GET /metrics``: the master's Prometheus metrics, on its HTTP server.

The families are built on the master's loop once a second (``Snapshot.refresh``), so a scrape
only formats them. ``?name[]=...`` restricts a scrape to some families, as prometheus_client's
own server does. With ``http.metrics_token`` a scrape needs a ``read`` token (Prometheus:
``authorization: {credentials: ...}``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reactord.http.auth import Guard


class Scrape:
    def __init__(self, registry: Any, guard: Guard | None, *, any_path: bool = False) -> None:
        self.registry = registry
        self.guard = guard
        self.any_path = any_path

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.metrics, allow_head=not self.any_path)
        if self.any_path:  # the older metrics.address listener: a scrape on every path, GET only
            app.router.add_get("/{tail:.*}", self.metrics, allow_head=False)
            app.router.add_route("*", "/{tail:.*}", self.read_only)

    async def read_only(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response = web.Response(status=200, headers={"Allow": "OPTIONS,GET"})
        else:
            response = web.json_response({"error": "GET only"}, status=405, headers={"Allow": "OPTIONS,GET"})
        response.force_close()
        return response

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        from prometheus_client.exposition import choose_encoder

        if self.guard is not None:
            self.guard.require(request, "read")
        registry = self.registry
        names = request.query.getall("name[]", [])
        if names:
            registry = registry.restricted_registry(names)
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry), headers={"Content-Type": content_type})
        response.enable_compression()  # gzip when the scraper accepts it, as prometheus_client's server
        if self.any_path:
            response.force_close()  # the older listener: one request per connection, as before
        return response
