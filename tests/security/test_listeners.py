"""The master's other listeners, attacked through a real master: the key service, the webhooks
listener and the metrics endpoint. Requests are written by hand on raw sockets, so that they
can be as wrong as an attacker likes."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import socket
import struct
import time
from typing import Any

import pytest

from reactord.protocol import codec
from reactord.protocol.keys import fingerprint, load_public_pem, load_signing_public_pem
from tests.support import Setup, free_ports

SECRET = "s3cr3t"
TOKEN = "tok-123"
BODY = json.dumps({"ref": "main"}).encode()


# -- raw ZMTP 3, enough to be a NULL-mechanism DEALER ---------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def _frame(body: bytes, flags: int = 0) -> bytes:
    """One ZMTP frame: flags 0x01 more, 0x04 command; long frames get 0x02 and an 8-byte size."""
    if len(body) > 255:
        return bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    flags = _recv_exact(sock, 1)[0]
    size = struct.unpack(">Q", _recv_exact(sock, 8))[0] if flags & 0x02 else _recv_exact(sock, 1)[0]
    return flags, _recv_exact(sock, size)


def _zmtp_dealer(port: int) -> socket.socket:
    """A TCP connection that has completed the ZMTP 3.0 NULL handshake as a DEALER."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
    sock.sendall(greeting)
    sock.sendall(_frame(b"\x05READY\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER", 0x04))
    theirs = _recv_exact(sock, 64)
    assert theirs[0] == 0xFF and theirs[9] == 0x7F and theirs[12:16] == b"NULL", theirs
    flags, ready = _read_frame(sock)
    assert flags & 0x04 and ready.startswith(b"\x05READY"), (flags, ready)
    return sock


def _closed_without_answer(sock: socket.socket, timeout: float) -> bool:
    """Wait (up to ``timeout``) for the peer to close; True if it closed and sent nothing first."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


# -- HTTP by hand ----------------------------------------------------------------------------------


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection and read the answer until the server closes."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # closed with part of our request unread: its answer was sent first
    assert answer, f"no answer to {request[:80]!r}"
    if not answer.startswith(b"HTTP/"):  # an HTTP/0.9 answer: no status line, no headers
        found = re.search(rb"Error code: (\d{3})", answer)
        return int(found[1]) if found else 200, {}, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _post(
    port: int, path: str, body: bytes, headers: dict[str, str], length: str | None = ""
) -> tuple[int, dict[str, Any]]:
    """POST ``body``; ``length`` is the Content-Length sent ("": the body's, None: no header)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length or len(body)}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    status, _, answer = _exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return status, json.loads(answer)


def _sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": _sign(body)}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _hooks_master(setup: Setup) -> int:
    """Start a master with one endpoint of each kind, and one that needs a secret and a token."""
    port = free_ports(1)[0]
    setup.edit_master(
        webhooks={
            "address": f"127.0.0.1:{port}",
            "max_body": 16384,  # room for a 5,000-digit number
            "endpoints": {
                "raw": {"kind": "json", "secret": SECRET},
                "ce": {"kind": "cloudevents", "secret": SECRET},
                "alerts": {"kind": "alertmanager", "token": TOKEN},
                "both": {"kind": "json", "secret": SECRET, "token": TOKEN},
            },
        }
    )
    (setup.root / "reactor.d" / "example.yaml").unlink()  # no rule makes events of its own
    setup.start_master()
    return port


def _refused(setup: Setup) -> dict[str, int]:
    return {k: v for k, v in setup.counters().items() if k.startswith("webhook.refused.")}


# -- the key service -------------------------------------------------------------------------------


def test_the_key_service_answers_only_the_public_key_and_fingerprint_whatever_it_is_asked(
    setup: Setup,
) -> None:
    setup.start_master()
    pki = setup.root / "pki" / "master"
    public = load_public_pem(pki / "master.pub")
    expected = codec.pack(["master_key", {"key": public, "finger": fingerprint(public)}])
    assert setup.cli_json("key", "finger")["master"] == fingerprint(public)
    requests = [
        [b"key"],
        [b""],
        [b"\x00" * 64],
        [bytes(range(64))],
        [codec.pack(["signing_key", {}])],
        [codec.pack(["master_key", {"key": b"k" * 32, "finger": "ab:cd"}])],
        [codec.pack(["hello", {"id": "web01", "grains": {}, "version": "x"}])],
        [codec.pack(["run", {"fun": "cmd.run", "args": ["id"]}])],
        [b"GET / HTTP/1.0\r\n\r\n"],
        [b"a", b"b" * 64, b""],  # one message of three frames
    ]
    answers = []
    with _zmtp_dealer(setup.ports[2]) as sock:
        for request in requests:
            sock.sendall(b"".join(_frame(f, 0x01) for f in request[:-1]) + _frame(request[-1]))
            answers.append(_read_frame(sock))
    assert answers == [(0, expected)] * len(requests)  # one frame, always the same bytes
    assert load_signing_public_pem(pki / "master_sign.pub") not in expected

    # a frame over 64 bytes is not read: libzmq drops the connection, and nothing is answered
    for oversized in (b"x" * 65, b"x" * 300):
        with _zmtp_dealer(setup.ports[2]) as sock:
            sock.sendall(_frame(oversized))
            assert _closed_without_answer(sock, 10), f"a {len(oversized)}-byte request was not refused"
    with _zmtp_dealer(setup.ports[2]) as sock:  # a long frame that announces 1 TiB
        sock.sendall(b"\x02" + struct.pack(">Q", 1 << 40) + b"x" * 16)
        assert _closed_without_answer(sock, 10), "a 1 TiB frame was not refused"

    assert setup.daemons[0].alive(), setup.daemons[0].output()[-2000:]
    assert setup.cli_json("key", "list") == {"accepted": [], "pending": [], "rejected": [], "denied": []}
    assert [e["tag"] for e in setup.events()] == ["reactor/master/start"]


# -- webhooks in -----------------------------------------------------------------------------------


def test_a_webhook_request_without_a_usable_content_length_is_refused_411(setup: Setup) -> None:
    port = _hooks_master(setup)
    chunked = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n"
    refused = [
        _post(port, "/hooks/raw", b"", _signed(BODY), length=None),  # no length, no body
        _post(port, "/hooks/raw", chunked, {**_signed(BODY), "Transfer-Encoding": "chunked"}, length=None),
        # the length is checked before authentication: a stranger also gets 411, not 401
        _post(port, "/hooks/alerts", b"", {}, length=None),
    ]
    assert [status for status, _ in refused] == [411] * 3
    assert all(answer == {"error": "a Content-Length is required"} for _, answer in refused)
    # a length that is not one, or a body with no length (its bytes would be the next request):
    # the HTTP layer refuses the request's framing before any handler runs (RFC 9112, 6.3)
    framing = [
        _post(port, "/hooks/raw", BODY, _signed(BODY), length=None),
        *(
            _post(port, "/hooks/raw", BODY, _signed(BODY), length=bad)
            for bad in ("-1", "+15", "1e3", "0x10", "15.0", "fifteen")
        ),
    ]
    assert [status for status, _ in framing] == [400] * 7
    assert all(answer["error"].startswith("bad HTTP request: ") for _, answer in framing)
    # ... and after the endpoint name: an unknown name is 404 with or without a length
    assert _post(port, "/hooks/nowhere", b"", {}, length=None)[0] == 404
    assert _refused(setup) == {"webhook.refused.411": 3, "webhook.refused.404": 1}
    assert setup.counters()["http.refused.400"] == 7
    assert setup.events("--tag", "webhook/**") == []

    # the very same request with its length goes through
    assert _post(port, "/hooks/raw", BODY, _signed(BODY))[0] == 202
    assert [e["data"] for e in setup.events("--tag", "webhook/**")] == [{"ref": "main"}]


def test_a_webhook_body_that_is_not_json_or_not_of_the_endpoints_kind_is_refused_400(
    setup: Setup,
) -> None:
    port = _hooks_master(setup)
    cloud = {"specversion": "1.0", "id": "A1", "source": "ci", "type": "com.example.deploy"}
    alert = {"status": "firing", "labels": {"alertname": "DiskFull"}, "fingerprint": "c0ffee"}
    deep_path = "/hooks/raw/" + "/".join(["a"] * 40)  # a tag of 42 segments
    cases: list[tuple[str, Any, str]] = [
        ("/hooks/raw", b"not json", "not JSON"),
        ("/hooks/raw", b'{"ref": ', "not JSON"),
        ("/hooks/raw", b"", "not JSON"),
        ("/hooks/raw", b'{"ref": "\xc3\x28"}', "not JSON"),  # not UTF-8
        ("/hooks/ce", [cloud], "not a CloudEvents 1.0 event"),
        ("/hooks/ce", {**cloud, "specversion": "0.3"}, "not a CloudEvents 1.0 event"),
        ("/hooks/ce", {k: v for k, v in cloud.items() if k != "id"}, "attributes missing: id"),
        ("/hooks/ce", {**cloud, "type": 7, "source": None}, "attributes missing: source, type"),
        ("/hooks/alerts", {}, "no alerts list"),
        ("/hooks/alerts", {"alerts": {"0": alert}}, "no alerts list"),
        ("/hooks/alerts", {"alerts": [alert, "x"]}, "an alert is not an object"),  # not even the first
        (deep_path, {}, "more than 32 segments"),
    ]
    answers = []
    for path, payload, _ in cases:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        auth = BEARER if path.startswith("/hooks/alerts") else _signed(body)
        answers.append(_post(port, path, body, auth))
    for (path, _, reason), (status, answer) in zip(cases, answers, strict=True):
        assert status == 400 and reason in answer["error"], (path, status, answer)
    assert _refused(setup) == {"webhook.refused.400": len(cases)}
    assert setup.events("--tag", "webhook/**") == []

    # well-formed bodies of each kind go through, one event each
    good = [
        ("/hooks/raw", BODY, _signed(BODY)),
        ("/hooks/ce", json.dumps(cloud).encode(), _signed(json.dumps(cloud).encode())),
        ("/hooks/alerts", json.dumps({"alerts": [alert]}).encode(), BEARER),
    ]
    assert [_post(port, path, body, auth)[0] for path, body, auth in good] == [202] * 3
    tags = sorted(e["tag"] for e in setup.events("--tag", "webhook/**"))
    assert tags == ["webhook/alerts/DiskFull/c0ffee", "webhook/ce/com.example.deploy", "webhook/raw"]


def test_values_python_or_msgpack_cannot_take_are_refused_whole_with_an_answer(setup: Setup) -> None:
    """Bytes that pass a naive check, and JSON that parses into what an event cannot carry:
    each gets an answer (never a dropped connection), and a request is taken whole or not at
    all (a good alert before a bad one makes no event either)."""
    port = _hooks_master(setup)
    request = b"POST /hooks/raw HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n{}"
    status, _, answer = _exchange(port, request)  # "\xb2" is "²" in latin-1: isdigit() but no int
    assert (status, json.loads(answer)["error"]) == (
        400,
        "bad HTTP request: Invalid character in Content-Length:",
    )

    alert = {"status": "firing", "labels": {"alertname": "DiskFull"}, "fingerprint": "c0ffee"}
    cases: list[tuple[str, bytes, str]] = [
        ("/hooks/raw", b'{"n": ' + b"7" * 5000 + b"}", "not JSON"),  # over Python's 4,300 digits
        ("/hooks/raw", b"[" * 5000 + b"]" * 5000, "not JSON"),  # deeper than the JSON parser goes
        ("/hooks/raw", b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}", "deeper than 64 levels"),  # 65 levels
        ("/hooks/raw", json.dumps({"n": 2**64}).encode(), "cannot be sent"),  # over 64 bits
        (
            "/hooks/alerts",
            json.dumps({"alerts": [alert, {"labels": {"n": 2**64}}]}).encode(),
            "cannot be sent",
        ),
    ]
    for path, body, reason in cases:
        auth = BEARER if path.startswith("/hooks/alerts") else _signed(body)
        status, answer = _post(port, path, body, auth)
        assert status == 400 and reason in answer["error"], (body[:40], status, answer)
    assert _refused(setup) == {"webhook.refused.400": len(cases)}
    assert setup.counters()["http.refused.400"] == 1  # the length that is not one
    assert setup.events("--tag", "webhook/**") == []
    assert "Traceback" not in setup.daemons[0].output()

    # the listener goes on, and the master's own event numbering has no gap
    assert _post(port, "/hooks/alerts", json.dumps({"alerts": [alert]}).encode(), BEARER)[0] == 202
    assert [e["tag"] for e in setup.events("--tag", "webhook/**")] == ["webhook/alerts/DiskFull/c0ffee"]
    seqs = [e["seq"] for e in setup.events("--source", "webhook/alerts")]
    assert seqs and all(later == earlier + 1 for earlier, later in itertools.pairwise(seqs))


def test_the_x_signature_256_header_is_checked_like_x_hub_signature_256(setup: Setup) -> None:
    port = _hooks_master(setup)
    other = b'{"ref": "evil"}'
    hexdigest = _sign(BODY).removeprefix("sha256=")
    refused = [
        {"X-Signature-256": _sign(other)},  # the signature of another body
        {"X-Signature-256": _sign(BODY, "wrong")},  # signed with another secret
        {"X-Signature-256": hexdigest},  # no "sha256="
        {"X-Signature-256": "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()},
        {"X-Signature-256": "sha256=" + hexdigest.upper()},
        # a wrong X-Hub-Signature-256 is not rescued by a right X-Signature-256
        {"X-Hub-Signature-256": _sign(other), "X-Signature-256": _sign(BODY)},
    ]
    answers = [_post(port, "/hooks/raw", BODY, headers) for headers in refused]
    assert answers == [(401, {"error": "bad or missing signature"})] * len(refused)
    assert setup.events("--tag", "webhook/**") == []

    assert _post(port, "/hooks/raw", BODY, {"X-Signature-256": _sign(BODY)})[0] == 202
    events = setup.events("--tag", "webhook/**")
    assert [(e["tag"], e["source"], e["data"]) for e in events] == [
        ("webhook/raw", "webhook/raw", {"ref": "main"})
    ]
    assert _refused(setup) == {"webhook.refused.401": len(refused)}


def test_an_endpoint_with_a_secret_and_a_token_needs_both(setup: Setup) -> None:
    port = _hooks_master(setup)
    refused = [
        (_signed(BODY), "bad or missing bearer token"),  # the signature alone
        (BEARER, "bad or missing signature"),  # the token alone
        ({**_signed(BODY), "Authorization": "Bearer wrong"}, "bad or missing bearer token"),
        ({**_signed(BODY), "Authorization": f"bearer {TOKEN}"}, "bad or missing bearer token"),
        ({**_signed(BODY), "Authorization": TOKEN}, "bad or missing bearer token"),
        ({"X-Hub-Signature-256": _sign(b"{}"), **BEARER}, "bad or missing signature"),
        ({}, "bad or missing signature"),
    ]
    for headers, reason in refused:
        assert _post(port, "/hooks/both", BODY, headers) == (401, {"error": reason}), headers
    assert setup.events("--tag", "webhook/**") == []

    assert _post(port, "/hooks/both", BODY, {**_signed(BODY), **BEARER})[0] == 202
    assert [e["tag"] for e in setup.events("--tag", "webhook/**")] == ["webhook/both"]
    assert _refused(setup) == {"webhook.refused.401": len(refused)}


@pytest.mark.slow
def test_a_webhook_client_that_stops_sending_is_cut_off_and_holds_up_no_one(setup: Setup) -> None:
    port = _hooks_master(setup)
    head = (
        f"POST /hooks/raw HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(BODY)}\r\n"
        f"X-Hub-Signature-256: {_sign(BODY)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as mid_headers,
        socket.create_connection(("127.0.0.1", port), timeout=5) as mid_body,
    ):
        mid_headers.sendall(head[:40])  # part of the headers, then silence
        mid_body.sendall(head + BODY[:5])  # all the headers, part of the body, then silence
        # while they hang, the listener answers others at once
        assert _post(port, "/hooks/raw", BODY, _signed(BODY))[0] == 202
        for sock in (mid_headers, mid_body):
            assert _closed_without_answer(sock, 30), "a stalled client got an answer"
        elapsed = time.monotonic() - started
    assert 9.5 <= elapsed < 30, f"cut off after {elapsed:.1f}s, not about 10s"
    assert len(setup.events("--tag", "webhook/**")) == 1  # the stalled request made no event
    assert _refused(setup) == {}
    assert setup.daemons[0].alive()


# -- the metrics endpoint --------------------------------------------------------------------------


def _master_state(setup: Setup) -> dict[str, Any]:
    state = setup.cli_json("state")
    return {
        # the HTTP server counts its requests and refusals (http.*); nothing else may move
        "counters": {k: v for k, v in setup.counters().items() if not k.startswith("http.")},
        "events": [(e["id"], e["tag"]) for e in setup.events()],
        "keys": setup.cli_json("key", "list"),
        "jobs": setup.cli_json("jobs"),
        "state": [(r["source"], r["tag"], r["id"]) for r in state["rows"]],
    }


def test_the_metrics_endpoint_changes_nothing_whatever_it_is_sent(setup: Setup) -> None:
    port = free_ports(1)[0]
    setup.edit_master(metrics={"address": f"127.0.0.1:{port}"})
    setup.start_master()
    before = _master_state(setup)
    status, _, scrape = _exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status == 200 and b"reactord_events_accepted_total 1.0" in scrape
    status, _, only = _exchange(port, b"GET /metrics?name[]=reactord_events_accepted_total HTTP/1.0\r\n\r\n")
    assert status == 200 and b"reactord_events_accepted_total 1.0" in only  # a filtered scrape
    assert b"reactord_keys" not in only

    body = json.dumps({"tag": "ops/x", "key": "web01", "fun": "cmd.run"}).encode()
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "TRACE", "CONNECT"):
        for path in ("/metrics", "/", "/hooks/raw", "/api/v1/admin/tsdb/delete_series"):
            status, headers, _ = _exchange(
                port,
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
            )
            if method == "CONNECT":  # its target is an authority, never one of the paths: 404
                assert status == 404, (method, path)
                continue
            assert (status, headers.get("allow")) == (405, "OPTIONS,GET"), (method, path)
    status, headers, answer = _exchange(port, b"OPTIONS /metrics HTTP/1.0\r\n\r\n")
    assert (status, headers["allow"], answer) == (200, "OPTIONS,GET", b"")

    # a GET on any path, odd ones included, is the same read-only scrape
    for path in ("/../../../../etc/passwd", "/metrics?x=%00&y=../../state", "/%2e%2e/state"):
        status, _, answer = _exchange(port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        assert status == 200 and b"root:" not in answer and b"# HELP reactord_" in answer, path

    garbage = [
        b"\x00\xff\x13garbage\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET " + b"/x" * 40000 + b" HTTP/1.0\r\n\r\n",
        b"GET /metrics HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nabc",
    ]
    # each answered 400 by the HTTP layer, in JSON, before any handler runs
    answers = [_exchange(port, request) for request in garbage]
    assert [status for status, _, _ in answers] == [400] * 5
    assert all(json.loads(body)["error"].startswith("bad HTTP request") for _, _, body in answers)

    assert setup.daemons[0].alive(), setup.daemons[0].output()[-2000:]
    assert _master_state(setup) == before
    status, _, scrape = _exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status == 200 and b"reactord_events_accepted_total 1.0" in scrape
