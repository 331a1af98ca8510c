"""What the master sends out, and the secrets it sends with: redirects and secret files."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from reactord.actions.context import ActionContext, ActionFailed, ActionServices
from reactord.actions.kinds.webhook import KIND as WEBHOOK
from reactord.actions.kinds.webhook import WebhookParams
from reactord.protocol.events import Event
from tests.support import Setup, free_ports, run_cli


@contextmanager
def _server(answer: tuple[int, dict[str, str]]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An HTTP server on 127.0.0.1 that answers every POST the same; yields (url, requests seen)."""
    seen: list[dict[str, str]] = []
    status, headers = answer

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(dict(self.headers))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST  # a followed 302 arrives as a GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_webhook_action_does_not_follow_a_redirect_or_carry_its_token_elsewhere() -> None:
    with _server((200, {})) as (elsewhere, taken), _server((302, {"Location": elsewhere})) as (url, seen):
        event = Event(id="E1", tag="deploy/done", source="cli", time=1.0, data={})
        ctx = ActionContext(event, "notify", "A1", 5.0, ActionServices(max_depth=8))
        params = WebhookParams(url, "POST", {"Authorization": "Bearer t0k"}, None)
        with pytest.raises(ActionFailed, match="HTTP 302"):
            asyncio.run(WEBHOOK.execute(params, ctx))
    assert len(seen) == 1 and seen[0]["Authorization"] == "Bearer t0k"
    assert taken == [], "the redirect was followed"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620, 0o604])
def test_the_master_refuses_a_webhook_secret_file_others_can_access(setup: Setup, mode: int) -> None:
    secret = setup.root / "hook.secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(mode)
    port = free_ports(1)[0]
    setup.edit_master(
        webhooks={
            "address": f"127.0.0.1:{port}",
            "endpoints": {"ci": {"kind": "json", "secret_file": "hook.secret"}},
        }
    )
    result = run_cli("master", "-c", str(setup.master_yaml), timeout=30)
    assert result.returncode == 2, result.stderr
    assert str(secret) in result.stderr and f"mode {mode:04o}" in result.stderr
    assert "owner-only" in result.stderr
