"""Webhooks in, through a real master, sent as the real senders send them: CloudEvents built by
the CloudEvents SDK (binary, structured, batched), GitHub deliveries with GitHub's headers, and
Alertmanager's v4 payload. Every request is sent twice, and must be logged once."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.support import Setup, free_ports, wait_until

SECRET = "s3cr3t"
TOKEN = "tok-123"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

RULES = """
rules:
  - name: on-push
    on: webhook/gh/push
    do: [{fire: ops/pushed, data: {ref: "{{ data.ref }}", delivery: "{{ data.github.delivery }}"}}]
  - name: page
    on: webhook/alerts/**
    when: {data.status: firing}
    do: [{fire: ops/page, data: {alert: "{{ data.labels.alertname }}"}}]
  - name: built
    on: webhook/ce/com.example.build.finished
    do: [{fire: ops/built, data: {version: "{{ data.data.version }}"}}]
"""


def _hooks_master(setup: Setup) -> int:
    port = free_ports(1)[0]
    setup.edit_master(
        webhooks={
            "address": f"127.0.0.1:{port}",
            "endpoints": {
                "ce": {"kind": "cloudevents", "secret": SECRET},
                "gh": {"kind": "github", "secret": SECRET},
                "alerts": {"kind": "alertmanager", "token": TOKEN},
            },
        }
    )
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "hooks.yaml").write_text(RULES)
    setup.start_master()
    return port


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _signed(body: bytes, headers: dict[str, str]) -> dict[str, str]:
    return {
        **headers,
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


def _twice(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a request, then send it again as a sender retrying it would: both are accepted."""
    first, again = _post(port, path, body, headers), _post(port, path, body, headers)
    assert first[0] == 202 and again[0] == 202, (first, again)
    return first[1], again[1]


def _send_cloudevent(port: int, message: HTTPMessage) -> tuple[dict[str, Any], dict[str, Any]]:
    return _twice(port, "/hooks/ce", message.body, _signed(message.body, message.headers))


def _by_id(setup: Setup, tag_glob: str) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in setup.events("--tag", tag_glob)}


# -- CloudEvents ----------------------------------------------------------------------------------------


def test_cloudevents_binary_structured_and_batched_from_the_sdk_each_logged_once(setup: Setup) -> None:
    port = _hooks_master(setup)
    when = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    build = CloudEvent(
        {
            "id": "build-1",
            "source": "ci.example.com/pipelines/7",
            "type": "com.example.build.finished",
            "time": when,
            "subject": "café/main",  # percent-encoded in its header by the SDK
            "dataschema": "https://schemas.example.com/build.json",
            "datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
        },
        {"version": "1.4.2"},
    )
    blob = CloudEvent(
        {
            "id": "blob-1",
            "source": "ci.example.com/artifacts",
            "type": "com.example.artifact",
            "time": when,
            "datacontenttype": "application/octet-stream",
        },
        b"\x00\xff\xfe",
    )
    note = CloudEvent(  # bytes of text: the SDK sends them as data_base64
        {
            "id": "note-1",
            "source": "ci.example.com/notes",
            "type": "com.example.note",
            "time": when,
            "datacontenttype": "text/plain",
            "traceparent": TRACEPARENT,
        },
        "déployé".encode(),
    )

    binary, binary_again = _send_cloudevent(port, to_binary_event(build))
    raw, raw_again = _send_cloudevent(port, to_binary_event(blob))
    structured, structured_again = _send_cloudevent(port, to_structured_event(note))
    assert json.loads(to_structured_event(note).body)["data_base64"]  # what the SDK sent

    for answer, again in ((binary, binary_again), (raw, raw_again), (structured, structured_again)):
        assert answer["accepted"] == 1 and "duplicate" not in answer
        assert again == {**answer, "duplicate": 1}  # the ids of the first delivery

    events = _by_id(setup, "webhook/ce/**")
    assert len(events) == 3
    ce = events[binary["ids"][0]]
    assert ce["tag"] == "webhook/ce/com.example.build.finished"
    assert ce["data"] == {
        "ce": {
            "specversion": "1.0",
            "id": "build-1",
            "source": "ci.example.com/pipelines/7",
            "type": "com.example.build.finished",
            "time": "2026-12-02T11:00:00Z",
            "subject": "café/main",
            "datacontenttype": "application/json",
            "dataschema": "https://schemas.example.com/build.json",
            "traceparent": TRACEPARENT,
        },
        "data": {"version": "1.4.2"},
    }
    blob_event = events[raw["ids"][0]]
    assert blob_event["tag"] == "webhook/ce/com.example.artifact"
    assert blob_event["data"]["data_base64"] == "AP/+" and "data" not in blob_event["data"]
    note_event = events[structured["ids"][0]]
    assert note_event["data"]["data"] == "déployé"  # data_base64 decoded, text kept as text
    assert note_event["data"]["ce"]["traceparent"] == TRACEPARENT

    # a batch: the JSON event format of each, in one array
    fmt = JSONFormat()
    batch = [
        CloudEvent({"id": f"n-{n}", "source": "ci.example.com/batch", "type": "com.example.step"}, {"n": n})
        for n in range(3)
    ]
    body = b"[" + b",".join(fmt.write(e) for e in batch) + b"]"
    headers = _signed(body, {"Content-Type": "application/cloudevents-batch+json"})
    first, again = _twice(port, "/hooks/ce", body, headers)
    assert first["accepted"] == 3 and again == {**first, "duplicate": 3}
    steps = setup.events("--tag", "webhook/ce/com.example.step")
    assert sorted(e["data"]["data"]["n"] for e in steps) == [0, 1, 2]
    assert sorted(e["id"] for e in steps) == sorted(first["ids"])

    # one rule fired, once, for the one build event
    built = wait_until(lambda: setup.events("--tag", "ops/built"), 20, "the build rule")
    assert [e["data"] for e in built] == [{"version": "1.4.2"}]
    assert setup.counters()["webhook.duplicate"] == 6
    assert len(setup.events("--tag", "webhook/ce/**")) == 6


def test_cloudevents_requests_that_break_the_binding_are_refused_with_a_reason(setup: Setup) -> None:
    port = _hooks_master(setup)
    good = to_binary_event(
        CloudEvent({"id": "x-1", "source": "s", "type": "t", "datacontenttype": "application/json"}, {"a": 1})
    )
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({**good.headers, "ce-specversion": "0.3"}, good.body, 400, "not a CloudEvents 1.0 event"),
        ({k: v for k, v in good.headers.items() if k != "ce-id"}, good.body, 400, "attributes missing: id"),
        ({**good.headers, "ce-Bad_Name": "x"}, good.body, 400, "not a CloudEvents attribute header"),
        ({**good.headers, "ce-subject": "%C3%28"}, good.body, 400, "not UTF-8 once percent-decoded"),
        ({**good.headers, "ce-subject": "x" * 5000}, good.body, 400, "over 4096 characters"),
        (good.headers, b'{"a": ', 400, "the data is not JSON"),
        ({"Content-Type": "application/cloudevents-batch+json"}, b"{}", 400, "is a JSON array of events"),
        ({"Content-Type": "application/cloudevents+avro"}, b"{}", 415, "is not supported"),
        ({"Content-Type": "application/json"}, b"[1]", 400, "not a CloudEvents 1.0 event"),
    ]
    for headers, body, status, reason in cases:
        answer = _post(port, "/hooks/ce", body, _signed(body, headers))
        assert answer[0] == status and reason in answer[1]["error"], (headers, answer)
    too_many = (
        b"["
        + b",".join(JSONFormat().write(CloudEvent({"source": "s", "type": "t"})) for _ in range(1001))
        + b"]"
    )
    answer = _post(
        port, "/hooks/ce", too_many, _signed(too_many, {"Content-Type": "application/cloudevents-batch+json"})
    )
    assert answer == (413, {"error": "1001 events in one batch; at most 1000 (webhooks.max_events)"})
    assert setup.events("--tag", "webhook/**") == []
    assert setup.daemons[0].alive() and "Traceback" not in setup.daemons[0].output()


# -- GitHub ------------------------------------------------------------------------------------------------


def _github(event: str, delivery: str, body: bytes, content_type: str = "application/json") -> dict[str, str]:
    """The headers GitHub sends with a delivery (docs.github.com, webhook events and payloads)."""
    return _signed(
        body,
        {
            "User-Agent": "GitHub-Hookshot/4f8d4c1",
            "Content-Type": content_type,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "412385718",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "79925214",
            "X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest(),
        },
    )


def test_github_ping_then_push_fire_only_the_push_rule_and_a_redelivery_is_logged_once(setup: Setup) -> None:
    port = _hooks_master(setup)
    repository = {"id": 79925214, "full_name": "acme/site", "default_branch": "main"}
    ping = {
        "zen": "Keep it logically awesome.",
        "hook_id": 412385718,
        "hook": {"type": "Repository", "id": 412385718, "events": ["push"], "active": True},
        "repository": repository,
    }
    push = {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "9f2c1e4b5a6d7c8e9f0a1b2c3d4e5f60718293a4",
        "repository": repository,
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "commits": [{"id": "9f2c1e4b", "message": "Ship it"}],
    }
    # the ping as GitHub sends it with the content type application/x-www-form-urlencoded
    ping_body = urllib.parse.urlencode({"payload": json.dumps(ping)}).encode()
    ping_delivery, push_delivery = (
        "f3d6a2f0-d0a1-11ef-8c1e-3a1f2b9c7d01",
        "0b8d6e00-d0a2-11ef-9c4a-5e2b1d0a9f12",
    )
    pinged, pinged_again = _twice(
        port,
        "/hooks/gh",
        ping_body,
        _github("ping", ping_delivery, ping_body, "application/x-www-form-urlencoded"),
    )
    push_body = json.dumps(push).encode()
    pushed, redelivered = _twice(port, "/hooks/gh", push_body, _github("push", push_delivery, push_body))
    assert pinged_again == {**pinged, "duplicate": 1} and redelivered == {**pushed, "duplicate": 1}

    events = setup.events("--tag", "webhook/gh/**")
    assert [(e["tag"], e["source"], e["id"]) for e in events] == [
        ("webhook/gh/ping", "webhook/gh", pinged["ids"][0]),
        ("webhook/gh/push", "webhook/gh", pushed["ids"][0]),
    ]
    assert events[0]["data"] == {
        **ping,
        "github": {"event": "ping", "delivery": ping_delivery, "hook_id": "412385718"},
    }
    assert events[1]["data"]["github"] == {"event": "push", "delivery": push_delivery, "hook_id": "412385718"}

    fired = wait_until(lambda: setup.events("--tag", "ops/pushed"), 20, "the push rule")
    assert [e["data"] for e in fired] == [{"ref": "refs/heads/main", "delivery": push_delivery}]
    ping_show = setup.cli_json("event", "show", pinged["ids"][0])
    assert [d["rule"] for d in ping_show.get("decisions", []) if d["fired"]] == []
    push_show = setup.cli_json("event", "show", pushed["ids"][0])
    assert [d["rule"] for d in push_show["decisions"] if d["fired"]] == ["on-push"]
    assert setup.counters()["webhook.duplicate"] == 2

    # no X-GitHub-Event: not a GitHub delivery; another content type: told what to set
    headers = _github("push", "another", push_body)
    del headers["X-GitHub-Event"]
    assert _post(port, "/hooks/gh", push_body, headers) == (
        400,
        {"error": "no X-GitHub-Event header: not a GitHub delivery"},
    )
    assert _post(port, "/hooks/gh", push_body, _github("push", "another", push_body, "text/plain"))[0] == 415
    assert len(setup.events("--tag", "webhook/gh/**")) == 2


# -- Alertmanager -------------------------------------------------------------------------------------------


def _alert(
    name: str, instance: str, fingerprint: str, status: str = "firing", ends: str | None = None
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"{name} on {instance}"},
        "startsAt": "2026-12-02T10:58:00.000Z",
        "endsAt": ends or "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def _notification(status: str, alerts: list[dict[str, Any]]) -> bytes:
    """Alertmanager's webhook payload, version 4 (prometheus.io/docs/alerting/latest/configuration)."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{severity="critical"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "reactord",
            "groupLabels": {"severity": "critical"},
            "commonLabels": {"severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
    ).encode()


def test_alertmanager_one_state_row_per_alert_a_resolved_alert_clears_its_row(setup: Setup) -> None:
    port = _hooks_master(setup)
    auth = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "User-Agent": "Alertmanager/0.25.0",
    }
    disk = _alert("DiskFull", "web01:9100", "a3f1c0d2e4b5a697")
    load = _alert("HighLoad", "web02:9100", "5b6c7d8e9fa0b1c2")

    first, again = _twice(port, "/hooks/alerts", _notification("firing", [disk, load]), auth)
    assert first["accepted"] == 2 and again == {**first, "duplicate": 2}

    def rows() -> list[tuple[str, str]]:
        state = setup.cli_json("state", "--source", "webhook/alerts")
        return [(r["tag"], r["data"]["status"]) for r in state["rows"]]

    assert rows() == [
        ("webhook/alerts/DiskFull/a3f1c0d2e4b5a697", "firing"),
        ("webhook/alerts/HighLoad/5b6c7d8e9fa0b1c2", "firing"),
    ]

    # the group again, DiskFull resolved: HighLoad is the same alert as before, logged once
    resolved = {**disk, "status": "resolved", "endsAt": "2026-12-02T11:04:00.000Z"}
    second, second_again = _twice(port, "/hooks/alerts", _notification("firing", [resolved, load]), auth)
    assert second["accepted"] == 2 and second["duplicate"] == 1 and second["ids"][1] == first["ids"][1]
    assert second_again == {**second, "duplicate": 2}
    assert rows() == [("webhook/alerts/HighLoad/5b6c7d8e9fa0b1c2", "firing")]

    events = setup.events("--source", "webhook/alerts")
    assert [(e["tag"], e["data"]["status"]) for e in events] == [
        ("webhook/alerts/DiskFull/a3f1c0d2e4b5a697", "firing"),
        ("webhook/alerts/HighLoad/5b6c7d8e9fa0b1c2", "firing"),
        ("webhook/alerts/DiskFull/a3f1c0d2e4b5a697", "resolved"),
    ]
    assert events[2]["data"] == {
        **{k: resolved[k] for k in ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL")},
        "fingerprint": "a3f1c0d2e4b5a697",
        "receiver": "reactord",
        "groupKey": '{}:{severity="critical"}',
        "externalURL": "http://alertmanager:9093",
    }
    pages = wait_until(lambda: len(p := setup.events("--tag", "ops/page")) >= 2 and p, 20, "two pages")
    assert sorted(p["data"]["alert"] for p in pages) == ["DiskFull", "HighLoad"]
    assert setup.counters()["webhook.duplicate"] == 5

    # the state table rebuilt from the event log agrees; the dedupe keys outlive a restart
    master = setup.daemons[0]
    assert master.stop() == 0
    db = sqlite3.connect(setup.root / "state" / "master" / "master.db")
    with closing(db), db:
        db.execute("DELETE FROM state")
    setup.start_master()
    assert rows() == [("webhook/alerts/HighLoad/5b6c7d8e9fa0b1c2", "firing")]
    after_restart = _post(port, "/hooks/alerts", _notification("firing", [resolved, load]), auth)
    assert after_restart == (202, {**second, "duplicate": 2})
    assert len(setup.events("--source", "webhook/alerts")) == 3


def test_a_dedupe_window_of_zero_logs_every_delivery(setup: Setup) -> None:
    port = free_ports(1)[0]
    setup.edit_master(
        webhooks={
            "address": f"127.0.0.1:{port}",
            "dedupe_window": "0s",
            "endpoints": {"alerts": {"kind": "alertmanager", "token": TOKEN}},
        }
    )
    setup.start_master()
    body = _notification("firing", [_alert("DiskFull", "web01:9100", "a3f1c0d2e4b5a697")])
    first, again = _twice(port, "/hooks/alerts", body, {"Authorization": f"Bearer {TOKEN}"})
    assert first["ids"] != again["ids"] and "duplicate" not in again
    assert len(setup.events("--source", "webhook/alerts")) == 2
