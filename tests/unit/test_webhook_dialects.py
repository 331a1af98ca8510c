"""Each webhook kind's reading of hostile requests, the dedupe of deliveries, and the state rows
a resolved alert clears: without sockets, against a real database file."""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from reactord.protocol.events import Event
from reactord.protocol.ids import new_ids
from reactord.store.database import Database
from reactord.store.deliveries import Deliveries
from reactord.store.eventlog import EventLog, Writes
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable, cleared
from reactord.webhook_kinds import KINDS, Item, Refused, Request
from reactord.webhooks import deliver


def _request(kind: str, body: bytes | Any, *headers: tuple[str, str], path: str = "") -> list[Item]:
    message = Message()
    for name, value in headers:
        message[name] = value
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return KINDS[kind](Request("e", path, message, raw), 10)


def _refused(kind: str, body: bytes | Any, *headers: tuple[str, str]) -> tuple[int, str]:
    with pytest.raises(Refused) as caught:
        _request(kind, body, *headers)
    return caught.value.status, caught.value.reason


CE = (("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "s"), ("ce-type", "t.x"))


# -- CloudEvents --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("application/json", b'{"a": 1}', {"data": {"a": 1}}),
        ("application/vnd.acme+json; charset=utf-8", b"[1, 2]", {"data": [1, 2]}),
        ("text/plain", b"caf\xc3\xa9", {"data": "café"}),
        ("text/plain", b'{"a": 1}', {"data": '{"a": 1}'}),  # not JSON by its type: kept as text
        ("application/octet-stream", b"\x00\xff", {"data_base64": "AP8="}),
        (None, b'{"a": 1}', {"data": {"a": 1}}),  # no Content-Type: JSON when it parses
        (None, b"plain words", {"data": "plain words"}),
        ("application/json", b"", {"data": None}),
    ],
)
def test_binary_mode_body_is_the_data_by_its_content_type(
    content_type: str | None, body: bytes, data: dict[str, Any]
) -> None:
    headers = CE + ((("Content-Type", content_type),) if content_type else ())
    [item] = _request("cloudevents", body, *headers)
    assert item.tag == "webhook/e/t.x"
    assert {k: v for k, v in item.data.items() if k != "ce"} == data
    assert item.data["ce"]["datacontenttype"] == content_type


def test_binary_mode_headers_are_percent_decoded_and_extensions_kept() -> None:
    [item] = _request(
        "cloudevents",
        b"{}",
        ("Ce-SpecVersion", "1.0"),  # header names are case-insensitive
        ("ce-id", "42"),
        ("ce-source", "urn:x%20y"),
        ("ce-type", "com.example/odd type"),
        ("ce-subject", "caf%C3%A9%22"),
        ("ce-traceparent", "00-abc-01"),
        ("ce-time", "2026-12-02T11:00:00Z"),
    )
    assert item.tag == "webhook/e/com.example_odd_type"
    assert item.data["ce"] == {
        "specversion": "1.0",
        "id": "42",
        "source": "urn:x y",
        "type": "com.example/odd type",
        "time": "2026-12-02T11:00:00Z",
        "subject": 'café"',
        "datacontenttype": None,
        "dataschema": None,
        "traceparent": "00-abc-01",
    }


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ((("ce-x", "1"),) * 2, "given twice"),
        (tuple((f"ce-x{n}", "1") for n in range(70)), "more than 64 ce-* headers"),
        ((("ce-data", "x"),), "not a CloudEvents attribute header"),
        ((("ce-datacontenttype", "text/plain"),), "goes in Content-Type"),
        ((("ce-ünï", "x"),), "not a CloudEvents attribute header"),
        ((("ce-subject", "caf\xe9"),), "not ASCII"),
        ((("ce-subject", "%FF"),), "not UTF-8"),
        ((("Content-Type", "application/json"), ("Content-Type", "text/plain")), "given 2 times"),
    ],
)
def test_binary_mode_refuses_what_the_binding_does_not_allow(
    headers: tuple[tuple[str, str], ...], reason: str
) -> None:
    status, text = _refused("cloudevents", b"{}", *CE, *headers)
    assert status == 400 and reason in text


def test_structured_mode_keeps_every_attribute_and_decodes_data_base64() -> None:
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": "t",
        "dataschema": "https://x/s.json",
        "datacontenttype": "application/json",
        "traceparent": "00-abc-01",
        "sampled": True,
        "priority": 3,
        "subject": None,  # null: as if absent
        "data_base64": "eyJhIjogMX0=",  # {"a": 1}
    }
    [item] = _request("cloudevents", event)
    assert item.data["data"] == {"a": 1}
    assert (
        item.data["ce"]["traceparent"] == "00-abc-01" and item.data["ce"]["dataschema"] == "https://x/s.json"
    )
    assert item.data["ce"]["sampled"] is True and item.data["ce"]["priority"] == 3
    assert item.data["ce"]["subject"] is None
    base = {k: v for k, v in event.items() if k != "data_base64"}
    assert [
        _refused("cloudevents", bad)[1]
        for bad in (
            {**base, "data_base64": "!!"},
            {**base, "data_base64": "AA==", "data": 1},
            {**base, "Traceparent": "x"},
            {**base, "ext": {"nested": 1}},
            {**base, "ext": "x" * 5000},
        )
    ] == [
        "data_base64 is not base64",
        "an event has data or data_base64, not both",
        "'Traceparent' is not a CloudEvents attribute name (a-z, 0-9)",
        "the attribute ext is not a string, number or boolean",
        "the attribute ext is over 4096 characters",
    ]


def test_the_same_source_and_id_give_the_same_key_in_every_mode() -> None:
    structured = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    [a] = _request("cloudevents", structured)
    [b] = _request("cloudevents", b"", *CE[:3], ("ce-type", "other"))
    [c, d] = _request(
        "cloudevents",
        [structured, {**structured, "id": "2"}],
        ("Content-Type", "application/cloudevents-batch+json"),
    )
    assert a.key == b.key == c.key != d.key and a.key is not None
    assert len(a.key) == 64  # a fixed size, however long the id


def test_a_batch_over_max_events_is_refused_before_any_event_is_read() -> None:
    batch = [{"not": "an event"}] * 11
    assert _refused("cloudevents", batch, ("Content-Type", "application/cloudevents-batch+json")) == (
        413,
        "11 events in one batch; at most 10 (webhooks.max_events)",
    )
    status, reason = _refused(
        "cloudevents", batch[:2], ("Content-Type", "application/cloudevents-batch+json")
    )
    assert status == 400 and reason.startswith("event 0 of the batch: not a CloudEvents 1.0 event")


# -- GitHub and json ---------------------------------------------------------------------------------------


def test_github_tags_by_event_and_reads_both_content_types() -> None:
    payload = {"ref": "refs/heads/main", "github": "overwritten"}
    headers = (("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-1"), ("X-GitHub-Hook-ID", "9"))
    [as_json] = _request("github", payload, ("Content-Type", "application/json"), *headers, path="ignored")
    form = b"payload=" + json.dumps(payload).encode().replace(b" ", b"+").replace(b'"', b"%22")
    [as_form] = _request("github", form, ("Content-Type", "application/x-www-form-urlencoded"), *headers)
    assert as_json == as_form
    assert as_json.tag == "webhook/e/push"
    assert as_json.data == {
        "ref": "refs/heads/main",
        "github": {"event": "push", "delivery": "d-1", "hook_id": "9"},
    }
    [ping] = _request("github", {}, ("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "d-2"))
    assert ping.tag == "webhook/e/ping" and ping.key != as_json.key
    [odd] = _request("github", {}, ("X-GitHub-Event", "../../x y"))
    assert odd.tag == "webhook/e/.._.._x_y" and odd.key is None  # no delivery id: no dedupe


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"{}", (), 400, "no X-GitHub-Event header"),
        (b"{}", (("X-GitHub-Event", "x" * 300),), 400, "over 256 characters"),
        (b"[1]", (("X-GitHub-Event", "push"),), 400, "a GitHub payload is a JSON object"),
        (b"{}", (("X-GitHub-Event", "push"), ("Content-Type", "text/xml")), 415, "application/json"),
        (
            b"a=1",
            (("X-GitHub-Event", "push"), ("Content-Type", "application/x-www-form-urlencoded")),
            400,
            "one payload field",
        ),
        (
            b"payload=%FF",
            (("X-GitHub-Event", "push"), ("Content-Type", "application/x-www-form-urlencoded")),
            400,
            "not a form",
        ),
        (
            b"&" * 40,
            (("X-GitHub-Event", "push"), ("Content-Type", "application/x-www-form-urlencoded")),
            400,
            "not a form",
        ),
    ],
)
def test_github_refusals(body: bytes, headers: tuple[tuple[str, str], ...], status: int, reason: str) -> None:
    got_status, got_reason = _refused("github", body, *headers)
    assert got_status == status and reason in got_reason


def test_json_takes_its_key_from_idempotency_key() -> None:
    [keyed] = _request("json", {"a": 1}, ("Idempotency-Key", "E1/rule/0"), path="x/y")
    [plain] = _request("json", [1])
    assert (keyed.tag, keyed.data, plain.tag, plain.data) == (
        "webhook/e/x/y",
        {"a": 1},
        "webhook/e",
        {"body": [1]},
    )
    assert keyed.key is not None and plain.key is None


# -- Alertmanager -------------------------------------------------------------------------------------------


def test_alertmanager_one_tag_per_alert_and_a_stable_fingerprint_without_one() -> None:
    labels = {"alertname": "Disk Full!", "instance": "web01"}
    payload = {
        "status": "resolved",
        "alerts": [
            {"labels": labels, "startsAt": "t0"},  # no status: the payload's; no fingerprint: hashed
            {"labels": dict(reversed(labels.items())), "status": "firing", "startsAt": "t0"},
            {"status": 7},
        ],
    }
    first, second, third = _request("alertmanager", payload)
    assert first.tag == second.tag and first.tag.startswith("webhook/e/Disk_Full/")
    assert first.data["fingerprint"] == second.data["fingerprint"] and len(first.data["fingerprint"]) == 16
    assert (first.data["status"], second.data["status"], third.data["status"]) == (
        "resolved",
        "firing",
        "resolved",
    )
    assert first.key != second.key  # another status: another delivery
    assert third.tag.startswith("webhook/e/unknown/")
    assert _refused("alertmanager", {"alerts": [{"labels": ["x"]}]}) == (
        400,
        "an alert's labels are not an object",
    )


# -- deliveries: dedupe in the events' transaction --------------------------------------------------------


class _Pipeline:
    """emit_many as the pipeline does it, as far as deliver sees it: ids, then one transaction."""

    def __init__(self, db: Database) -> None:
        self.log = EventLog(db)
        self.emitted: list[str] = []

    def __call__(
        self, items: list[tuple[str, dict[str, Any]]], *, source: str, writes: Any = None
    ) -> list[Event]:
        events = [
            Event(id=i, tag=tag, source=source, time=1.0, data=data, received=1.0)
            for (tag, data), i in zip(items, new_ids(len(items), 1.0), strict=True)
        ]
        extra: Writes = writes(events) if writes else []
        self.log.append(events, {}, None, None, extra)
        self.emitted += [e.tag for e in events]
        return events


def test_a_delivery_sent_again_is_answered_with_the_first_ids_and_logged_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    deliveries, emit = Deliveries(db, window=60), _Pipeline(db)
    items = [Item("webhook/e/a", {}, "k1"), Item("webhook/e/b", {}, None), Item("webhook/e/a2", {}, "k1")]
    first = deliver("e", items, deliveries, emit, now=1000)
    assert first.duplicate == 1 and first.ids[0] == first.ids[2]  # a copy within the request
    again = deliver("e", items, deliveries, emit, now=1030)
    assert again.duplicate == 2 and again.ids[0] == first.ids[0] and again.ids[1] != first.ids[1]
    assert emit.emitted == ["webhook/e/a", "webhook/e/b", "webhook/e/b"]
    assert deliver("other", items[:1], deliveries, emit, now=1030).duplicate == 0  # keys are per endpoint
    assert deliver("e", items[:1], deliveries, emit, now=1061).duplicate == 0  # past the window: new
    assert deliveries.prune(now=1100) == 1  # "other" (1030); "e" was delivered again at 1061
    assert deliveries.known("other", ["k1"], now=1100) == {} and deliveries.known("e", ["k1"], now=1100)
    assert deliveries.prune(now=1200) == 1 and deliveries.known("e", ["k1"], now=1200) == {}


def test_the_keys_are_bounded_by_count_the_oldest_going_first(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    deliveries, emit = Deliveries(db, window=3600), _Pipeline(db)
    for n in range(5):
        deliver("e", [Item("webhook/e/a", {}, f"k{n}")], deliveries, emit, now=1000 + n)
    assert deliveries.prune(now=1010, max_keys=3) == 2  # within the window, but over the count
    assert deliveries.known("e", [f"k{n}" for n in range(5)], now=1010).keys() == {"k2", "k3", "k4"}


def test_nothing_new_writes_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    emit = _Pipeline(db)
    assert deliver("e", [], Deliveries(db, window=60), emit, now=1).ids == []
    assert emit.emitted == []


# -- a resolved alert clears its state row -------------------------------------------------------------------


def test_a_resolved_webhook_event_clears_its_state_row_live_and_rebuilt(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    table, log = StateTable(db), EventLog(db)
    ids = iter(new_ids(10, 1.0))

    def write(tag: str, source: str, status: str) -> Event | None:
        """Write one event as the pipeline does; the state row it followed."""
        event = Event(id=next(ids), tag=tag, source=source, time=1.0, data={"status": status}, received=1.0)
        pairs, rows = table.advance([event])
        log.append([event], {}, rows, None, [(StateTable.CLEAR, cleared([event]))])
        return pairs[0][1]

    def rows() -> list[tuple[str, str]]:
        return [(e.source, e.tag) for e in table.current()]

    write("webhook/a/Disk/1", "webhook/a", "firing")
    write("webhook/a/Load/2", "webhook/a", "firing")
    write("minion/web01/x", "web01", "resolved")  # only events from webhooks clear
    assert write("webhook/a/Disk/1", "webhook/a", "resolved") is not None  # rules see what it ends
    assert rows() == [("web01", "minion/web01/x"), ("webhook/a", "webhook/a/Load/2")]
    assert table.previous("webhook/a", "webhook/a/Disk/1") is None
    table.rebuild()
    assert rows() == [("web01", "minion/web01/x"), ("webhook/a", "webhook/a/Load/2")]

    assert write("webhook/a/Disk/1", "webhook/a", "firing") is None  # firing again: a new row
    table.rebuild()
    assert rows() == [
        ("web01", "minion/web01/x"),
        ("webhook/a", "webhook/a/Disk/1"),
        ("webhook/a", "webhook/a/Load/2"),
    ]
