"""Floods that used to cost everyone: one webhook request of 333,326 events, large events that
grew memory and disk without bound, a minion that slowed every command, and log lines written
one per hostile message. Each bound is checked by its count; and after each, another minion
is still served at once and its events are all logged."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any

import pytest
import zmq

from reactord.protocol import messages as m
from tests.security.helpers import (
    RawMinion,
    after_attack,
    curve_socket,
    honest_traffic,
    ping,
    running,
)
from tests.support import Setup, free_ports, rss_kib, wait_until

TOKEN = "tok-123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
#: Records of one call site the master's log lets through per 10 s (logsetup.BURST).
BURST = 10


def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` on a new connection; the status and body of the answer."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/"), f"no answer to {request[:60]!r}: {answer[:60]!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _post(port: int, path: bytes, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", f"Content-Length: {len(body)}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    status, answer = _exchange(port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return status, json.loads(answer)


def _hooks_master(setup: Setup) -> int:
    port = free_ports(1)[0]
    endpoints = {"alerts": {"kind": "alertmanager", "token": TOKEN}}
    setup.edit_master(webhooks={"address": f"127.0.0.1:{port}", "endpoints": endpoints})
    running(setup, "web02")
    return port


def _log_accounts_for(setup: Setup, pattern: str, template: str, total: int) -> list[str]:
    """Wait until the master's log lines that match ``pattern``, plus the number its rate
    limit's summaries of templates that match ``template`` left out ("N more like this in 10 s:
    <template>"), add up to ``total``: every hostile message accounted for, all but a few in a
    summary. Returns the lines that passed."""

    def counted() -> list[str] | None:
        lines = setup.daemons[0].log.read_bytes().decode("utf-8", "replace").splitlines()
        passed = [x for x in lines if re.search(pattern, x) and " more like this in " not in x]
        left_out = sum(
            int(found[1].replace(",", ""))
            for x in lines
            if re.search(template, x) and (found := re.search(r" ([\d,]+) more like this in ", x))
        )
        return passed if len(passed) + left_out == total else None

    return wait_until(counted, 30, f"{total} messages like {pattern!r} to be logged or summarized")


# -- 4. one webhook request may become at most webhooks.max_events events --------------------------


def test_an_alertmanager_request_of_a_million_bytes_is_refused_and_999_alerts_pass(setup: Setup) -> None:
    port = _hooks_master(setup)
    huge = b'{"alerts":[' + b"{}," * 349_000 + b"{}]}"  # 349,001 alerts in just under 1 MiB (max_body)
    answers: list[tuple[int, dict[str, Any]]] = []
    stop = threading.Event()

    def send_huge() -> None:
        while not stop.is_set():
            try:
                answers.append(_post(port, b"/hooks/alerts", huge, BEARER))
            except (OSError, ValueError) as exc:  # no answer, or not one of ours: the test says so
                answers.append((0, {"error": repr(exc)}))

    sender = threading.Thread(target=send_huge, daemon=True)
    with honest_traffic(setup, "web02") as sent:
        sender.start()
        try:
            wait_until(lambda: answers, 30, "the first answer to the huge request")
            assert ping(setup, "web02"), "web02 did not answer while the huge requests were sent"
        finally:
            stop.set()
            sender.join(60)
        alerts = [{"status": "firing", "labels": {"n": str(n)}} for n in range(1001)]
        too_many = _post(port, b"/hooks/alerts", json.dumps({"alerts": alerts}).encode(), BEARER)
        whole = _post(port, b"/hooks/alerts", json.dumps({"alerts": alerts[:999]}).encode(), BEARER)
    after_attack(setup, "web02", sent)
    assert {status for status, _ in answers} == {413}
    assert "349001 alerts in one request; at most 1000 (webhooks.max_events)" in answers[0][1]["error"]
    assert too_many[0] == 413 and "webhooks.max_events" in too_many[1]["error"]
    assert whole[0] == 202 and whole[1]["accepted"] == 999
    events = setup.events("--source", "webhook/alerts")
    assert sorted(int(e["data"]["labels"]["n"]) for e in events) == list(range(999))
    assert len({e["received"] for e in events}) == 1  # stamped once: one emit, one write
    assert setup.counters()["webhook.refused.413"] == len(answers) + 1


# -- 5. large events under distinct tags: the master's memory stays bounded ------------------------


@pytest.mark.slow
def test_3000_large_events_under_distinct_tags_leave_the_masters_memory_bounded(setup: Setup) -> None:
    # no byte budget: 600 MB must reach the master quickly, and it is memory that is measured
    setup.edit_master(state={"cache_bytes": "1MiB"}, limits={"bytes_per_second": 0})
    running(setup, "web02")
    master = setup.daemons[0]
    evil = RawMinion(setup, "evil")
    blob, now = "x" * 200_000, time.time()
    events = [[n, f"minion/evil/big/{n}", now, {"blob": blob}, None] for n in range(1, 3001)]
    peak = [rss_kib(master.proc.pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak.append(rss_kib(master.proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with honest_traffic(setup, "web02") as sent:
            evil.deliver("big", events, per_frame=4, timeout=300)
    finally:
        stop.set()
        sampler.join(10)
        evil.close()
    # Bound: what the master may hold at once by design, over what it holds at rest: a commit
    # of at most 64 frames of 1 MiB (DRAIN), each as the frame, its decoded data and their packed
    # copy, and a receive queue of 64 MiB (limits.receive_queue_bytes): 256 MiB; the state cache
    # adds 1 MiB here. Held in a cache bounded only by count, the 600 MB of events took 2.4 GiB.
    assert max(peak) - peak[0] < 256 * 1024, f"RSS grew from {peak[0]} KiB to {max(peak)} KiB"
    after_attack(setup, "web02", sent)
    assert len(setup.events("--source", "evil", "--tag", "minion/evil/big/*")) == 3000


# -- 6. per-source budgets, the event log bounded in bytes, and log lines bounded in number --------


def test_a_flood_from_one_minion_is_held_to_its_budget_and_no_one_else_waits(setup: Setup) -> None:
    setup.edit_master(limits={"events_per_second": 1000, "burst_seconds": 1})
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    flood = curve_socket(evil.ctx, zmq.PUB, setup, evil.keys, setup.ports[0])  # drops at its HWM
    now = time.time()
    events = [[s, f"minion/evil/f/{s % 7}", now, {"s": s}, None] for s in range(1, 100_001)]
    chunks = [events[n : n + 500] for n in range(0, len(events), 500)]
    frames = [m.EventBatch(epoch="flood", base=1, events=chunk).to_wire() for chunk in chunks]
    stop = threading.Event()

    def send_flood() -> None:
        while not stop.is_set():
            for frame in frames:
                flood.send(frame)

    sender = threading.Thread(target=send_flood, daemon=True)

    def refused() -> int:
        return int(setup.cli_json("status")["budget_refused"].get("evil", 0))

    try:
        with honest_traffic(setup, "web02") as sent:
            sender.start()
            wait_until(lambda: refused() > 100, 30, "the budget to refuse the flood")
            for _ in range(3):
                assert ping(setup, "web02"), "web02 did not answer test.ping within 5 s during the flood"
    finally:
        stop.set()
        sender.join(30)
        flood.close(linger=0)
        evil.close()
    after_attack(setup, "web02", sent)
    status = setup.cli_json("status")
    assert status["budget_refused"]["evil"] == status["counters"]["drop.over_budget"] > 100
    assert list(status["budget_refused"]) == ["evil"]


def _db_bytes(setup: Setup) -> int:
    state = setup.root / "state" / "master"
    return sum(p.stat().st_size for p in state.glob("master.db*") if p.is_file())


@pytest.mark.slow
@pytest.mark.parametrize(
    "tags",
    ["one tag", "distinct tags"],
)
def test_large_events_keep_the_database_near_event_log_max_bytes_and_the_newest_events(
    setup: Setup, tags: str
) -> None:
    setup.edit_master(
        event_log={"max_bytes": "8MiB"}, limits={"bytes_per_second": "8MiB", "burst_seconds": 1}
    )
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    blob, now = "x" * 900_000, time.time()
    tag = "minion/evil/big" if tags == "one tag" else "minion/evil/big/{}"
    events = [[n, tag.format(n), now, {"n": n, "blob": blob}, None] for n in range(1, 151)]
    sizes = [_db_bytes(setup)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            sizes.append(_db_bytes(setup))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with honest_traffic(setup, "web02") as sent:
            evil.deliver("big", events, per_frame=1, timeout=300)
    finally:
        stop.set()
        sampler.join(10)
        evil.close()
    after_attack(setup, "web02", sent, pruned=True)
    # 135 MB sent. Bound: max_bytes (8 MiB), what the budget lets in between two retention
    # rounds (1 s at 8 MiB/s, plus a burst of 8 MiB and one frame of debt: 17 MiB), and a
    # write-ahead log holding about one commit's worth of the same.
    assert max(sizes) < 64 << 20, f"the database reached {max(sizes)} bytes: {sizes}"
    kept = sorted(e["data"]["n"] for e in setup.events("--source", "evil"))
    assert kept and kept == list(range(kept[0], 151)), kept  # the newest, none missing


@pytest.mark.slow
def test_events_outside_the_namespace_are_counted_all_and_logged_a_few_times(setup: Setup) -> None:
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    now = time.time()
    events = [[n, f"minion/web02/forged/{n}", now, {}, None] for n in range(1, 20_001)]
    try:
        with honest_traffic(setup, "web02") as sent:
            evil.deliver("forged", events, per_frame=1000)
    finally:
        evil.close()
    after_attack(setup, "web02", sent)
    assert setup.counters()["drop.namespace"] == 20_000
    dropped = r"dropped minion/web02/forged/\d+ from evil"
    passed = _log_accounts_for(setup, dropped, "outside minion/%s/", 20_000)
    assert len(passed) <= 2 * BURST  # one or two windows of 10 s
    assert setup.events("--tag", "minion/web02/forged/**") == []


@pytest.mark.slow
def test_a_new_outbox_epoch_in_every_frame_is_logged_a_few_times(setup: Setup) -> None:
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    now = time.time()
    try:
        with honest_traffic(setup, "web02") as sent:
            for n in range(1, 501):
                event = [1, f"minion/evil/epoch/{n}", now, {}, None]
                evil.pub.send(m.EventBatch(epoch=f"e{n}", base=1, events=[event]).to_wire())
            evil.deliver("last", [[1, "minion/evil/epoch/last", now, {}, None]], 1)  # all read by then
    finally:
        evil.close()
    after_attack(setup, "web02", sent)
    epochs = len(setup.events("--source", "evil"))  # one event each
    assert epochs > 100
    # "first events from evil" for each new epoch of the first commit, "has a new outbox" after;
    # web02's one outbox shares the first call site
    either = r"first events from \S+ \(outbox \w+\)|\S+ has a new outbox \w+"
    passed = _log_accounts_for(setup, either, r"first events from %s|has a new outbox %s", epochs + 1)
    assert len(passed) <= 4 * BURST  # two call sites, one or two windows of 10 s each


# -- 7. refused webhook requests: counted all, logged a few times, escaped -------------------------


@pytest.mark.slow
def test_unauthenticated_webhook_requests_are_counted_all_and_logged_few_and_escaped(setup: Setup) -> None:
    port = _hooks_master(setup)
    # Percent-encoded, so that the request line parses and the decoded path (escape bytes, a
    # newline, line and bidi separators) reaches authentication and the log line of its refusal.
    paths = [
        b"/hooks/alerts/plain",
        b"/hooks/alerts/%1b[2J%1b[31mred%07%c2%9b31m%7f%00",
        b"/hooks/alerts/x%0a12:00:00.000%20ERROR%20reactord.master:%20forged",
        b"/hooks/alerts/%e2%80%a8forged%e2%80%ae",
    ]
    # the same bytes raw in the request line: refused by the HTTP layer (400), logged escaped too
    raw_paths = [
        b"/hooks/alerts/\x1b[2J\x1b[31mred\x07\x9b31m\x7f\x00",
        "/hooks/alerts/\u2028forged\u202e".encode(),
    ]
    requests = 2000
    with honest_traffic(setup, "web02") as sent:
        answers = [_post(port, paths[n % len(paths)], b"{}", {})[0] for n in range(requests)]
        framing = [
            _exchange(port, b"POST " + path + b" HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")[0]
            for path in raw_paths * 50
        ]
    after_attack(setup, "web02", sent)
    assert set(answers) == {401}
    assert set(framing) == {400}
    assert setup.counters()["webhook.refused.401"] == requests
    assert setup.counters()["http.refused.400"] == len(framing)
    refused = r"webhook /hooks/alerts/\S+ refused \(401\)"
    passed = _log_accounts_for(setup, refused, r"refused \(%d\)", requests)
    assert len(passed) <= 2 * BURST
    raw = setup.daemons[0].log.read_bytes()
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw)  # no control byte but the newline
    assert "\u2028".encode() not in raw and "\u202e".encode() not in raw and b"\xc2\x9b" not in raw
    record = re.compile(rb"\d\d:\d\d:\d\d\.\d{3} (DEBUG|WARNING) +reactord\.webhooks: ")
    assert all(record.match(x) for x in raw.splitlines() if b"forged" in x)  # inside its own record
