"""``POST /hooks/<name>[/<path>]``: webhooks in, on the master's HTTP server.

The checks and what a request becomes are ``reactord.webhooks.WebhookIntake``'s; this is its
HTTP side: the endpoint and the body's length checked before the body is read, the body read
within ``http.body_timeout`` (408 for a slow client), at most ``webhooks.max_connections``
requests handled at once (more wait for a slot; one that stops sending mid-body is cut off
without an answer, counted ``webhook.stalled``), every refusal answered ``{"error": reason}``
with its status (and ``Retry-After`` on 429 and 503), counted and logged in one line. Every
answer closes its connection.
"""

from __future__ import annotations

import logging
import math
from email.message import Message

from aiohttp import web

from reactord.http.auth import Refusal
from reactord.http.server import json_response, read_body
from reactord.webhooks import Refused, WebhookIntake

log = logging.getLogger("reactord.webhooks")


class Hooks:
    def __init__(self, intake: WebhookIntake, body_timeout: float) -> None:
        self.intake = intake
        self.body_timeout = body_timeout

    def add_routes(self, app: web.Application) -> None:
        # [\s\S]: a path segment may hold any decoded character, %0a included
        app.router.add_post("/hooks/{name}", self.post)
        app.router.add_post(r"/hooks/{name}/{path:[\s\S]*}", self.post)
        app.router.add_route("*", r"/hooks/{tail:[\s\S]*}", self.other)

    async def other(self, request: web.Request) -> web.StreamResponse:
        response = json_response({"error": "POST only"}, 405, {"Allow": "POST"})
        response.force_close()
        return response

    async def post(self, request: web.Request) -> web.StreamResponse:
        intake = self.intake
        try:
            async with intake.slots:
                headers = _message(request)
                endpoint, length = intake.endpoint(request.match_info["name"], headers)
                try:
                    body = await read_body(request, length, self.body_timeout)
                except Refusal as exc:
                    if exc.status != 408 or request.transport is None:
                        raise Refused(exc.status, exc.reason) from None
                    # a sender that stops mid-body is cut off without an answer, as a stalled head is
                    intake.stats.incr("webhook.stalled")
                    request.transport.abort()
                    return web.Response(status=408)
                subpath = request.match_info.get("path", "").split("/")
                answer = intake.take(endpoint, subpath, headers, body)
        except Exception as exc:
            if not isinstance(exc, Refused):  # a bug: answered and logged, counted with the others
                log.exception("webhook %s failed", request.raw_path[:100])
                exc = Refused(500, "internal error")
            intake.refused(request.raw_path, exc)  # as sent: percent-encoded, one word
            headers_out = {}
            if exc.retry_after is not None:
                headers_out["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            response = json_response({"error": exc.reason}, exc.status, headers_out)
        else:
            response = json_response(answer, 202)
        # One request per connection, as before: a refused request's body may not have been
        # read, and senders open a connection per delivery anyway.
        response.force_close()
        return response


def _message(request: web.Request) -> Message:
    """The request's headers as the webhook kinds read them (``get``, ``get_all``, ``items``)."""
    message = Message()
    for name, value in request.headers.items():
        message[name] = value
    return message
