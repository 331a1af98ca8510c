"""``webhook``: an HTTP request with a JSON body (the event, or the rendered ``body``)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from reactord import __version__
from reactord.actions.context import ActionContext, ActionFailed
from reactord.base import jsonable

MAX_RESPONSE = 64 * 1024


def _post(url: str, method: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", f"reactord/{__version__}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read(MAX_RESPONSE)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_RESPONSE)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (a failure), never followed: headers such as Authorization
    must not travel to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


async def execute(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    url = params["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ActionFailed(f"bad URL {url!r}", retry=False)
    body = params["body"] if params["body"] is not None else ctx.event.public()
    payload = jsonable.to_json(body).encode()
    headers = {str(k): str(v) for k, v in params["headers"].items()}
    if ctx.idempotency_key and not any(k.lower() == "idempotency-key" for k in headers):
        headers["Idempotency-Key"] = ctx.idempotency_key  # the same for every try, and after a restart
    try:
        status, text = await asyncio.to_thread(_post, url, params["method"], headers, payload, ctx.timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ActionFailed(f"{params['method']} {url}: {getattr(exc, 'reason', exc)}") from None
    if not 200 <= status < 300:
        snippet = text[:200].decode(errors="replace")
        raise ActionFailed(f"{params['method']} {url}: HTTP {status} {snippet}".rstrip())
    return {"status": status}
