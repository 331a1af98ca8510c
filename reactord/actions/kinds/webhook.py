"""``webhook``: an HTTP request with a JSON body (the event, or the rendered ``body``).

Keys: ``webhook`` (the URL, ``http://`` or ``https://``; a template), ``method`` (POST, PUT
or PATCH; POST by default), ``headers`` (a mapping of text values, templates inside) and
``body`` (any value, templates inside; the event when left out). Default timeout 10s. Every
try sends the action's ``Idempotency-Key`` unless the headers give one; a redirect is an
answer (a failure), never followed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reactord import __version__
from reactord.actions.context import ActionContext, ActionFailed
from reactord.actions.kind import ActionKind
from reactord.base import jsonable
from reactord.reactor.actionspec import ActionParams, text_template
from reactord.reactor.templates import compile_value

if TYPE_CHECKING:
    import urllib.request

MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True, slots=True)
class WebhookParams(ActionParams):
    url: Any  # text, or a template of it
    method: str
    headers: Any  # a mapping of text values, templates inside
    body: Any  # None: the event


class Webhook(ActionKind[WebhookParams]):
    name = "webhook"
    keys = ("webhook", "method", "headers", "body")
    default_timeout = 10.0
    params_type = WebhookParams

    def parse(self, spec: Mapping[str, Any]) -> WebhookParams:
        url = text_template(spec["webhook"], "webhook")
        text = url if isinstance(url, str) else url.text
        if not text.startswith(("http://", "https://")):
            raise ValueError("webhook: the URL must start with http:// or https://")
        method = spec.get("method", "POST")
        if method not in ("POST", "PUT", "PATCH"):
            raise ValueError("method: expected POST, PUT or PATCH")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers: expected a mapping of text values")
        headers = compile_value(headers)
        return WebhookParams(url, method, headers, compile_value(spec["body"]) if "body" in spec else None)

    async def execute(self, params: WebhookParams, ctx: ActionContext) -> dict[str, Any]:
        url, method = params.url, params.method
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ActionFailed(f"bad URL {url!r}", retry=False)
        body = params.body if params.body is not None else ctx.event.public()
        payload = jsonable.to_json(body).encode()
        headers = {str(k): str(v) for k, v in params.headers.items()}
        if ctx.idempotency_key and not any(k.lower() == "idempotency-key" for k in headers):
            headers["Idempotency-Key"] = ctx.idempotency_key  # the same for every try, and after a restart
        try:
            status, text = await asyncio.to_thread(_post, url, method, headers, payload, ctx.timeout)
        except OSError as exc:  # URLError and TimeoutError among them
            raise ActionFailed(f"{method} {url}: {getattr(exc, 'reason', exc)}") from None
        if not 200 <= status < 300:
            snippet = text[:200].decode(errors="replace")
            raise ActionFailed(f"{method} {url}: HTTP {status} {snippet}".rstrip())
        return {"status": status}


KIND = Webhook()


def _post(url: str, method: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", f"reactord/{__version__}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with _opener().open(request, timeout=timeout) as response:
            return int(response.status), response.read(MAX_RESPONSE)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_RESPONSE)


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """The opener of every webhook, made at the first (urllib is imported then: loading the
    kinds, as ``rules check`` does, does not import HTTP)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect is an answer (a failure), never followed: headers such as Authorization
        must not travel to another address."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)
