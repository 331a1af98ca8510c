"""The HTTP API (/api/v1) against a real master and minion: each answer is what the CLI's
``--json`` prints for the same thing, and every refusal is the documented one (docs/api.md)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from reactord.http.routes import PREFIX, ROUTES
from tests.support import Setup, free_ports, run_cli, wait_until

pytestmark = pytest.mark.slow

RULES = """\
rules:
  - name: echo-deploy
    on: "minion/*/app/deployed"
    do:
      - fire: ops/deploy/seen
        data: {host: "{{ source }}"}
  - name: broken-hook
    on: "test/hook/fail"
    do:
      - webhook: "http://127.0.0.1:{closed}/nowhere"
        timeout: 1s
        retry: {attempts: 1}
"""


class Client:
    """HTTP by hand on 127.0.0.1: a status, headers and the JSON answer."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            text = response.read()
            got = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        answer = json.loads(text) if got.get("content-type", "").startswith("application/json") else text
        return response.status, got, answer

    def get(self, path: str, token: str) -> Any:
        status, _, answer = self.request("GET", PREFIX + path, token=token)
        assert status == 200, (path, status, answer)
        return answer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, Client, dict[str, str]]]:
    root = tmp_path_factory.mktemp("api")
    port, closed = free_ports(2)
    setup = Setup.create(
        root,
        http={
            "address": f"127.0.0.1:{port}",
            "max_body": 4096,
            "body_timeout": "1s",
            "header_timeout": "1s",
            "max_connections": 16,
        },
    )
    (root / "reactor.d" / "example.yaml").write_text(RULES.replace("{closed}", str(closed)))
    setup.start_master()
    setup.start_minion("web01", grains={"roles": ["web"]})
    setup.accept_all("web01")
    wait_until(lambda: setup.presence("web01") == "up", 20, "web01 up")
    tokens = {}
    for role in ("read", "operate", "admin"):
        made = setup.cli_json("token", "create", "--role", role, "--name", f"t-{role}")
        tokens[role] = made["token"]
    try:
        yield setup, Client(port), tokens
    finally:
        setup.close()


def _without(value: Any, *keys: str) -> Any:
    """``value`` with ``keys`` left out at every depth (what changes between two reads)."""
    if isinstance(value, dict):
        return {k: _without(v, *keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, *keys) for v in value]
    return value


def test_every_read_answers_what_the_cli_json_prints(served: tuple[Setup, Client, dict[str, str]]) -> None:
    setup, api, tokens = served
    read = tokens["read"]
    setup.cli("event", "fire", "test/api/one", "--data", '{"n": 1}')
    run = setup.cli_json("run", "web01", "test.echo", "hello")
    assert run["returns"]["web01"]["return"] == "hello"

    # Things that move between two reads (uptime, rates, counters, ages, heartbeats) are
    # left out; everything else is equal, key for key.
    assert _without(
        api.get("/status", read), "uptime", "events_per_second", "counters", "database_bytes"
    ) == (_without(setup.cli_json("status"), "uptime", "events_per_second", "counters", "database_bytes"))
    assert _without(api.get("/minions", read), "last_seen") == _without(
        setup.cli_json("minions"), "last_seen"
    )
    assert api.get("/keys", read) == setup.cli_json("key", "list")
    status, _, answer = api.request("GET", f"{PREFIX}/cluster", token=read)  # a single master
    cli = setup.cli("cluster", "status", "--json")
    assert (status, cli.returncode) == (404, 1) and answer["error"] in cli.stderr
    assert api.get("/rules", read) == setup.cli_json("rules", "list")
    assert api.get("/jobs?limit=5", read) == setup.cli_json("jobs", "--limit", "5")
    assert api.get(f"/jobs/{run['jid']}", read) == setup.cli_json("jobs", "show", run["jid"])
    assert api.get("/deadletters?status=all", read) == setup.cli_json(
        "deadletters", "list", "--status", "all"
    )

    listed = api.get("/events?tag=" + quote("test/**") + "&limit=5", read)
    assert listed == setup.cli_json("event", "list", "--tag", "test/**", "--limit", "5")
    assert [e["tag"] for e in listed] == ["test/api/one"]
    since = listed[0]["received"]
    assert api.get(f"/events?source=cli&since={since}", read) == setup.cli_json(
        "event", "list", "--source", "cli", "--since", str(since)
    )
    event_id = listed[0]["id"]
    assert api.get(f"/events/{event_id}", read) == setup.cli_json("event", "show", event_id)
    assert api.get(f"/events/{event_id}/explain", read) == setup.cli_json("rules", "explain", event_id)
    # the job's chain: the run's event and its returns, as `event show` tells it
    job_events = api.get("/events?tag=" + quote("reactor/job/**"), read)
    assert job_events == setup.cli_json("event", "list", "--tag", "reactor/job/**")

    assert _without(api.get("/state?source=web01", read), "age") == _without(
        setup.cli_json("state", "--source", "web01"), "age"
    )
    status, _, gate = api.request(
        "POST",
        f"{PREFIX}/gate",
        token=read,
        body={"conditions": ["minion/*/presence/**", "data.x exists"], "target": "web01"},
    )
    cli_gate = setup.cli("gate", "minion/*/presence/**", "data.x exists", "--target", "web01", "--json")
    assert status == 200 and _without(gate, "age") == _without(json.loads(cli_gate.stdout), "age")


def test_rules_explain_and_check_of_a_posted_file_answer_as_the_cli(
    served: tuple[Setup, Client, dict[str, str]], tmp_path: Path
) -> None:
    setup, api, tokens = served
    event = {"tag": "minion/web01/app/deployed", "source": "web01", "data": {}, "time": 1.0}
    status, _, explained = api.request(
        "POST", f"{PREFIX}/rules/explain", token=tokens["read"], body={"event": event}
    )
    (tmp_path / "event.json").write_text(json.dumps(event))
    assert status == 200
    cli = setup.cli_json("rules", "explain", "--event", str(tmp_path / "event.json"))
    assert explained["event"].pop("id") != cli["event"].pop("id")  # an event given whole gets a new id
    assert explained == cli
    assert [r["rule"] for r in explained["now"] if r["fired"]] == ["echo-deploy"]

    good = "rules:\n  - name: ok\n    on: a/b\n    do:\n      - log: hi\n"
    bad = "rules:\n  - name: nope\n    on: a/b\n    do:\n      - explode: now\n"
    for name, text in (("good.yaml", good), ("bad.yaml", bad)):
        path = tmp_path / name
        path.write_text(text)
        status, _, verdict = api.request(
            "POST", f"{PREFIX}/rules/check?name={name}", token=tokens["read"], raw=text.encode()
        )
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "reactord",
                "rules",
                "check",
                name,
                "-c",
                str(setup.master_yaml),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        expected = json.loads(cli.stdout)
        expected.pop("warnings", None)  # the CLI's own: function names it asks the minion code for
        assert status == 200 and verdict == expected, (verdict, expected)
    assert (
        verdict["ok"] is False
        and verdict["file"] == "bad.yaml"
        and "an action needs exactly one of" in verdict["error"]
    )
    # 2 KB whose anchors name each other twice over: refused as it is read, never walked
    bomb = "rules:\n  - name: r0\n    on: a/b\n    when: &w0 {data.x: {eq: 1}}\n    do: [{log: hi}]\n"
    for n in range(1, 40):
        bomb += f"  - name: r{n}\n    on: a/b\n    when: &w{n} {{all: [*w{n - 1}, *w{n - 1}]}}\n"
        bomb += "    do: [{log: hi}]\n"
    status, _, verdict = api.request("POST", f"{PREFIX}/rules/check", token=tokens["read"], raw=bomb.encode())
    assert status == 200 and verdict["ok"] is False and "aliases" in verdict["error"]


def test_writes_answer_as_the_cli_and_need_their_role(served: tuple[Setup, Client, dict[str, str]]) -> None:
    setup, api, tokens = served
    before = setup.counters().get("http.refused.403", 0)

    status, _, fired = api.request(
        "POST", f"{PREFIX}/events", token=tokens["operate"], body={"tag": "test/api/fired", "data": {"a": 1}}
    )
    assert status == 200 and set(fired) == {"id", "tag"}
    shown = setup.cli_json("event", "show", fired["id"])
    assert (shown["source"], shown["data"]) == ("api", {"a": 1})

    status, _, ran = api.request(
        "POST",
        f"{PREFIX}/run",
        token=tokens["operate"],
        body={"target": "web01", "fun": "test.echo", "args": ["x"]},
    )
    assert status == 200 and set(ran) == {"jid", "returns", "summary"}
    assert ran["returns"]["web01"]["return"] == "x"
    assert setup.cli_json("jobs", "show", ran["jid"])["origin"] == "api"  # who asked, in the job's record
    timing = ("jid", "started", "finished", "duration", "time")
    assert _without(ran, *timing) == _without(setup.cli_json("run", "web01", "test.echo", "x"), *timing)

    # the read role looks only; operate does not reach keys or reloads
    for token, method, path, body in (
        (tokens["read"], "POST", "/events", {"tag": "test/x"}),
        (tokens["read"], "POST", "/run", {"target": "*", "fun": "test.ping"}),
        (tokens["read"], "POST", "/deadletters/x/retry", None),
        (tokens["operate"], "POST", "/rules/reload", None),
        (tokens["operate"], "POST", "/keys/web01/reject", None),
        (tokens["operate"], "DELETE", "/keys/web01", None),
    ):
        status, _, answer = api.request(method, PREFIX + path, token=token, body=body)
        assert status == 403 and "role" in answer["error"], (path, status, answer)
    assert setup.counters()["http.refused.403"] == before + 6
    assert setup.presence("web01") == "up"  # the key is still accepted

    status, _, reloaded = api.request("POST", f"{PREFIX}/rules/reload", token=tokens["admin"])
    assert status == 200 and "reloaded" in reloaded
    status, _, answer = api.request("POST", f"{PREFIX}/keys/nobody/accept", token=tokens["admin"])
    assert status == 409 and "nobody" in answer["error"]

    # values an event cannot carry are refused, never a 500
    for data in ({"n": 10**30}, {"n": "x" * 10}, []):
        status, _, answer = api.request(
            "POST", f"{PREFIX}/events", token=tokens["operate"], body={"tag": "t/x", "data": data}
        )
        assert status in (200, 400), (data, status, answer)
        assert status == 400 or data == {"n": "x" * 10}
    status, _, answer = api.request(
        "POST", f"{PREFIX}/events", token=tokens["operate"], body={"tag": "t/x", "sneaky": 1}
    )
    assert status == 400 and "sneaky" in answer["error"]
    status, _, answer = api.request("GET", f"{PREFIX}/events?limit=abc", token=tokens["read"])
    assert status == 400 and "limit" in answer["error"]
    status, _, answer = api.request("GET", f"{PREFIX}/events?tag=" + quote("a//b"), token=tokens["read"])
    assert status == 400
    # found by schemathesis against the OpenAPI document: a time near -1.8e308 was a 500
    for at in ("-1.7976931348623157e308", "1.7976931348623157e308", "-1"):
        status, _, answer = api.request("GET", f"{PREFIX}/state?at={at}", token=tokens["read"])
        assert status == 400 and "1970" in answer["error"], (at, status, answer)


def test_a_failed_webhook_action_is_a_dead_letter_retried_through_the_api(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served
    setup.cli("event", "fire", "test/hook/fail")
    letters = wait_until(
        lambda: [d for d in api.get("/deadletters", tokens["read"]) if d["rule"] == "broken-hook"],
        20,
        "a dead letter",
    )
    assert api.get("/deadletters", tokens["read"]) == setup.cli_json("deadletters", "list")
    status, _, results = api.request(
        "POST", f"{PREFIX}/deadletters/{letters[0]['id']}/retry", token=tokens["operate"]
    )
    assert status == 200 and [r["id"] for r in results] == [letters[0]["id"]] and results[0]["ok"] is False
    status, _, _ = api.request("POST", f"{PREFIX}/deadletters/nope/retry", token=tokens["operate"])
    assert status == 404
    assert api.request("GET", f"{PREFIX}/deadletters?status=bogus", token=tokens["read"])[0] == 400


def test_tokens_that_are_not_valid_are_refused_logged_and_counted(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, _tokens = served
    before = setup.counters().get("http.refused.401", 0)
    short = setup.cli_json("token", "create", "--role", "admin", "--name", "short", "--expires", "1s")
    revoked = setup.cli_json("token", "create", "--role", "admin", "--name", "gone")
    assert api.request("GET", f"{PREFIX}/status", token=revoked["token"])[0] == 200
    setup.cli("token", "revoke", "gone")
    forged = revoked["token"][:-4] + ("aaaa" if not revoked["token"].endswith("aaaa") else "bbbb")
    cases = {
        "none": (None, {}),
        "not a token": ("hello", {}),
        "forged": (forged, {}),
        "revoked": (revoked["token"], {}),
        "basic auth": (None, {"Authorization": "Basic YWRtaW46YWRtaW4="}),
    }
    for what, (token, headers) in cases.items():
        status, got, answer = api.request("GET", f"{PREFIX}/status", token=token, headers=headers)
        assert status == 401 and got["www-authenticate"].startswith("Bearer"), what
        assert revoked["token"] not in json.dumps(answer)
    wait_until(
        lambda: api.request("GET", f"{PREFIX}/status", token=short["token"])[0] == 401,
        10,
        "the token expires",
    )
    assert setup.counters()["http.refused.401"] >= before + len(cases) + 1
    log = setup.daemons[0].output()
    assert re.search(r"refused \(401\): token \w+ \(gone\) is revoked", log)
    assert re.search(r"refused \(401\): token \w+ \(short\) has expired", log)
    assert "wrong secret for token" in log


def _login(api: Client, token: str) -> tuple[str, str]:
    """Log in as the dashboard does: the session cookie and its CSRF token."""
    form = f"token={token}".encode()
    status, got, _ = api.request(
        "POST",
        "/ui/login",
        raw=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"http://127.0.0.1:{api.port}",
        },
    )
    assert status == 303 and got["location"] == "/ui/", (status, got)
    cookie = got["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags, cookie
    session = cookie.split(";")[0]
    status, _, who = api.request("GET", f"{PREFIX}/session", headers={"Cookie": session})
    assert status == 200 and who["login"] is True
    return session, who["csrf"]


def test_a_login_writes_only_with_its_csrf_token_from_this_origin(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served
    session, csrf = _login(api, tokens["operate"])
    body = {"tag": "test/api/csrf"}
    origin = f"http://127.0.0.1:{api.port}"
    cases = [
        ({"Cookie": session}, 403),  # no CSRF token
        ({"Cookie": session, "X-CSRF-Token": "x" * 43}, 403),  # a wrong one
        ({"Cookie": session, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403),
        ({"Cookie": session, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Cookie": session, "X-CSRF-Token": csrf, "Origin": origin}, 200),
    ]
    for headers, expected in cases:
        status, _, answer = api.request("POST", f"{PREFIX}/events", body=body, headers=headers)
        assert status == expected, (headers, status, answer)
    assert len(setup.events("--tag", "test/api/csrf")) == 1
    # reads need no CSRF token; a login of a revoked token ends with it
    assert api.request("GET", f"{PREFIX}/status", headers={"Cookie": session})[0] == 200
    setup.cli("token", "revoke", "t-operate")
    assert api.request("GET", f"{PREFIX}/status", headers={"Cookie": session})[0] == 401

    status, got, _ = api.request(
        "POST",
        "/ui/login",
        raw=b"token=rdt_nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and got["location"] == "/ui/login?failed=1" and "set-cookie" not in got
    assert api.request("GET", "/ui/", headers={})[1].get("location") == "/ui/login"


def test_bodies_over_the_limit_and_slow_clients_are_refused(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served
    big = {"tag": "test/api/big", "data": {"x": "y" * 5000}}  # http.max_body is 4096
    status, _, answer = api.request("POST", f"{PREFIX}/events", token=tokens["admin"], body=big)
    assert status == 413 and "4096" in answer["error"]
    head = (
        f"POST {PREFIX}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['admin']}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"y" * 3000
    chunked = head + (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 2 + b"0\r\n\r\n"
    assert _status_of(api.port, chunked) == 413  # no length: counted as it comes

    # a body that stops coming: 408 after http.body_timeout (1s); a head that stops: closed
    stalled_body = head.replace(b"Transfer-Encoding: chunked", b"Content-Length: 100") + b'{"tag": '
    with (
        socket.create_connection(("127.0.0.1", api.port), timeout=10) as body_sock,
        socket.create_connection(("127.0.0.1", api.port), timeout=10) as head_sock,
    ):
        body_sock.sendall(stalled_body)
        head_sock.sendall(head[:30])
        assert api.request("GET", f"{PREFIX}/status", token=tokens["read"])[0] == 200  # others go on
        answer = _read_all(body_sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert _read_all(head_sock) == b""  # closed without an answer
    assert setup.events("--tag", "test/api/big") == []
    assert setup.daemons[0].alive()


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _status_of(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = _read_all(sock)
    return int(answer.split(b" ", 2)[1])


def test_the_live_stream_sends_matching_events_as_they_are_logged(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served

    def open_stream(glob: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        conn.request(
            "GET", f"{PREFIX}/live?tag=" + quote(glob), headers={"Authorization": f"Bearer {tokens['read']}"}
        )
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        assert response.getheader("X-Content-Type-Options") == "nosniff"  # a stream's head has them too
        assert response.readline() == b": live\n"  # the stream is open from here on
        return conn, response

    def next_event(response: http.client.HTTPResponse) -> dict[str, Any]:
        lines: list[bytes] = []
        while not lines or lines[-1] != b"\n" or not any(line.startswith(b"data: ") for line in lines):
            lines.append(response.readline())
        assert b"event: event\n" in lines
        return json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])

    (live_conn, live), (other_conn, other) = open_stream("test/live/**"), open_stream("test/other")
    setup.cli("event", "fire", "test/other")
    setup.cli("event", "fire", "test/live/one", "--data", '{"html": "<img src=x onerror=alert(1)>"}')
    data = next_event(live)  # each stream gets what its glob matches, and only that
    assert (data["tag"], data["source"], data["data"]) == (
        "test/live/one",
        "cli",
        {"html": "<img src=x onerror=alert(1)>"},
    )
    assert next_event(other)["tag"] == "test/other"
    live_conn.close()
    other_conn.close()
    assert api.request("GET", f"{PREFIX}/live?tag=" + quote("a//b"), token=tokens["read"])[0] == 400


def test_the_openapi_document_lists_every_route_with_its_role(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    _setup, api, _tokens = served
    status, got, document = api.request("GET", f"{PREFIX}/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    served_routes = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert served_routes == {(r.method, PREFIX + r.path) for r in ROUTES}
    for path, ops in document["paths"].items():
        for op in ops.values():
            assert op["x-reactord-role"] in ("read", "operate", "admin"), path
    assert (
        "script-src 'self'" in got["content-security-policy"]
        and "unsafe-inline" not in got["content-security-policy"]
    )
    assert got["x-content-type-options"] == "nosniff"


def test_key_decisions_through_the_api_answer_as_the_cli(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served
    setup.start_minion("web02")
    wait_until(lambda: "web02" in api.get("/keys", tokens["read"])["pending"], 20, "web02 pending")
    status, _, accepted = api.request("POST", f"{PREFIX}/keys/web02/accept", token=tokens["admin"])
    assert (status, accepted) == (200, {"accepted": ["web02"]})
    wait_until(lambda: setup.presence("web02") == "up", 20, "web02 up")
    assert setup.cli_json("key", "reject", "web02") == {"rejected": ["web02"]}  # the CLI's answer, same shape
    status, _, deleted = api.request("DELETE", f"{PREFIX}/keys/web02", token=tokens["admin"])
    assert (status, deleted) == (200, {"deleted": ["web02"]})
    keys = api.get("/keys", tokens["read"])  # its next hello may make a new pending key: no more
    assert "web02" not in keys["accepted"] + keys["rejected"]
    status, _, answer = api.request("POST", f"{PREFIX}/keys/web*/accept", token=tokens["admin"])
    assert status == 409 and "web*" in answer["error"]  # one exact id: no globs through the API


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (owner-only), as an operator's PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "http.crt", folder / "http.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_over_https_the_api_answers_and_a_login_cookie_is_secure(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    port = free_ports(1)[0]
    setup = Setup.create(
        tmp_path / "m", http={"address": f"127.0.0.1:{port}", "tls_cert": str(cert), "tls_key": str(key)}
    )
    try:
        # a key others may read, or a certificate that is not one: exit 2, one line naming it
        key.chmod(0o644)
        refused = run_cli("master", "-c", str(setup.master_yaml))
        assert refused.returncode == 2 and "http.tls_key" in refused.stderr and "chmod 600" in refused.stderr
        key.chmod(0o600)
        cert.write_text("not a certificate")
        refused = run_cli("master", "-c", str(setup.master_yaml))
        last = refused.stderr.splitlines()[-1]
        assert refused.returncode == 2 and last.startswith("error: ") and "http.tls_cert" in last
        cert, key = _self_signed(tmp_path)

        setup.start_master()
        token = setup.cli_json("token", "create", "--role", "read")["token"]
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        conn.request("GET", f"{PREFIX}/status", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["version"]
        conn.request(
            "POST",
            "/ui/login",
            body=f"token={token}",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"https://127.0.0.1:{port}",
            },
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 303
        assert "secure" in {f.strip().lower() for f in response.getheader("Set-Cookie", "").split(";")}
        conn.close()
        with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP to the TLS port: no answer
            Client(port).request("GET", f"{PREFIX}/status", token=token)
    finally:
        setup.close()


def test_connections_past_max_connections_are_closed_and_counted(
    served: tuple[Setup, Client, dict[str, str]],
) -> None:
    setup, api, tokens = served
    before = setup.counters().get("http.refused.connections", 0)
    sockets = [socket.create_connection(("127.0.0.1", api.port), timeout=10) for _ in range(24)]
    try:
        # the server took 16 of them; the others were closed as soon as they were made
        closed = wait_until(
            lambda: n if (n := setup.counters().get("http.refused.connections", 0) - before) >= 8 else None,
            10,
            "the connections past the bound refused",
        )
        assert closed >= 8
    finally:
        for sock in sockets:
            sock.close()

    # once they are closed, the API answers again (a request racing the closes may be cut off)
    def answers() -> bool:
        try:
            return api.request("GET", f"{PREFIX}/status", token=tokens["read"])[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    wait_until(answers, 10, "the API")
