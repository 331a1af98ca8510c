"""Issue 3 through real daemons: at-least-once delivery, exactly-once processing, the bus and its CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zmq

from reactord.protocol.keys import CurveKeys
from reactord.protocol.messages import EventBatch
from tests.peers import master_key
from tests.support import Setup, minion_cli, rss_kib, run_cli, wait_until


def _check_source(setup: Setup, minion_id: str, count: int) -> None:
    """The log holds exactly ``count`` load events from ``minion_id``, once each, in seq order."""
    events = setup.events("--source", minion_id, "--tag", f"minion/{minion_id}/load")  # oldest first
    assert len(events) == count
    ns = [e["data"]["n"] for e in events]
    seqs = [e["seq"] for e in events]
    assert sorted(ns) == list(range(1, count + 1)), "every event exactly once"
    assert seqs == sorted(seqs) and len(set(seqs)) == count, "in seq order"
    assert ns == sorted(ns)


def _logged_directly(setup: Setup, tag_prefix: str) -> int:
    """Events in the master's log, read straight from its database (fast enough to poll often)."""
    path = setup.root / "state" / "master" / "master.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as conn:
        try:
            return int(
                conn.execute("SELECT COUNT(*) FROM events WHERE tag LIKE ?", (tag_prefix + "%",)).fetchone()[
                    0
                ]
            )
        except sqlite3.OperationalError:
            return 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sixty_thousand_events_survive_two_master_sigkills_exactly_once_in_order(setup: Setup) -> None:
    master = setup.start_master(level="info")
    ids = ["web01", "web02", "web03"]
    for minion_id in ids:
        setup.start_minion(minion_id)
    setup.accept_all(*ids)

    senders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactord",
                "event",
                "send",
                "load",
                "--count",
                "20000",
                "-d",
                "payload=xxxxxxxxxxxxxxxx",
                "-c",
                str(setup.root / f"minion-{m}.yaml"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in ids
    ]
    master.kill()  # first kill: while the events are being handed over and sent
    setup.daemons.remove(master)
    for sender in senders:
        out, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, err
        assert "queued 20000 event(s)" in out

    before = _logged_directly(setup, "minion/")
    assert before < 60000
    master = setup.start_master(level="info")
    wait_until(lambda: _logged_directly(setup, "minion/") > before, 60, "delivery to make progress")
    master.kill()  # second kill: in the middle of delivery
    setup.daemons.remove(master)
    at_second_kill = _logged_directly(setup, "minion/")
    setup.start_master(level="info")

    wait_until(lambda: len(setup.events("--tag", "minion/*/load")) >= 60000, 180, "all 60,000 events")
    for minion_id in ids:
        _check_source(setup, minion_id, 20000)
    counters = setup.counters()
    assert counters.get("drop.namespace", 0) == 0
    print(f"logged before the restarts: {before}, at the second kill: {at_second_kill}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_events_survive_a_minion_sigkill_right_after_send_returned(setup: Setup) -> None:
    setup.start_master()
    minion = setup.start_minion("web01")
    setup.accept_all("web01")
    result = setup.send("web01", "load", "--count", "5000")
    assert result.returncode == 0, result.stderr
    minion.kill()
    setup.daemons.remove(minion)
    setup.start_minion("web01")
    wait_until(lambda: len(setup.events("--tag", "minion/web01/load")) >= 5000, 60, "5000 events")
    _check_source(setup, "web01", 5000)


@contextmanager
def _watching(setup: Setup, pattern: str, count: int = 2) -> Iterator[subprocess.Popen[str]]:
    """``reactord event watch --json`` on ``pattern``, live once this yields (nothing after
    is missed); killed on the way out if it has not ended."""
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reactord",
            "event",
            "watch",
            "--json",
            "--count",
            str(count),
            "--timeout",
            "60",
            "-c",
            str(setup.master_yaml),
            pattern,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None
        assert "watching" in watch.stderr.readline()
        yield watch
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()


def test_event_watch_sees_an_event_fired_and_one_sent(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    with _watching(setup, "**/ops/deploy/start") as watch:
        fired = setup.cli(
            "event", "fire", "ops/deploy/start", "-d", "version=1.4.2", "--data", '{"canary": true}'
        )
        assert fired.returncode == 0, fired.stderr
        sent = setup.send("web01", "ops/deploy/start", "-d", "n=1")
        assert sent.returncode == 0, sent.stderr
        out, _ = watch.communicate(timeout=60)
    assert watch.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["id"] == fired.stdout.strip()
    assert (lines[0]["tag"], lines[0]["source"], lines[0]["data"]) == (
        "ops/deploy/start",
        "cli",
        {"version": "1.4.2", "canary": True},
    )
    assert set(lines[0]) == {"id", "tag", "source", "time", "seq", "data"}
    assert (lines[1]["tag"], lines[1]["source"], lines[1]["data"]) == (
        "minion/web01/ops/deploy/start",
        "web01",
        {"n": 1},
    )
    shown = setup.cli_json("event", "show", lines[0]["id"])
    assert shown["tag"] == "ops/deploy/start"


def test_event_watch_pattern_and_send_namespacing(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    with _watching(setup, "minion/web01/**") as watch:
        assert setup.send("web01", "app/deployed", "-d", "version=2").returncode == 0
        assert setup.send("web01", "reactor/key/x/accepted").returncode == 0
        out, _ = watch.communicate(timeout=60)
    tags = [json.loads(line)["tag"] for line in out.splitlines()]
    assert tags == ["minion/web01/app/deployed", "minion/web01/reactor/key/x/accepted"]
    assert [e["source"] for e in setup.events("--tag", "minion/web01/**")] == ["web01", "web01"]
    assert setup.events("--tag", "reactor/key/x/**") == []


def test_a_tampered_client_with_an_accepted_key_cannot_publish_outside_its_namespace(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.start_minion("web02")
    setup.accept_all("web01", "web02")
    keys = CurveKeys.load_or_create(setup.root / "pki" / "web01", "minion")  # web01's real key
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.curve_serverkey = master_key(setup.root)
    pub.curve_publickey, pub.curve_secretkey = keys.public_z85, keys.secret_z85
    pub.connect(f"tcp://127.0.0.1:{setup.ports[0]}")
    forged = [
        [1, "reactor/key/x/accepted", time.time(), {"id": "x"}, None],
        [2, "minion/web02/beacon/service", time.time(), {"running": False}, None],
        [3, "minion/web01/ok", time.time(), {}, None],
    ]
    frame = EventBatch(epoch="forged01", base=1, events=forged).to_wire()
    try:

        def delivered() -> bool:
            pub.send(frame)  # PUB drops until the subscription is known: re-send until counted
            return setup.counters().get("drop.namespace", 0) >= 2

        wait_until(delivered, 20, "the forged batch to reach the master")
    finally:
        pub.close()
        ctx.term()
    assert setup.events("--tag", "reactor/key/x/**") == []
    assert setup.events("--tag", "minion/web02/**") == []
    assert [e["tag"] for e in setup.events("--tag", "minion/web01/**")] == ["minion/web01/ok"]
    assert setup.counters()["drop.namespace"] == 2  # re-sends were deduplicated, not re-counted


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_memory_stays_bounded_while_a_minion_is_cut_off_and_events_pile_up(setup: Setup) -> None:
    master = setup.start_master(level="info")
    minion = setup.start_minion("web01", outbox={"max_events": 1000})
    setup.accept_all("web01")
    assert setup.send("web01", "warmup").returncode == 0  # the master now knows this outbox
    wait_until(lambda: setup.events("--tag", "minion/web01/warmup"), 20, "the warm-up event")
    master_rss = rss_kib(master.proc.pid)
    master.stop()
    setup.daemons.remove(master)

    config = str(setup.root / "minion-web01.yaml")
    first = setup.send("web01", "load", "--count", "2000")
    assert first.returncode == 0, first.stderr
    minion_rss = rss_kib(minion.proc.pid)
    for _ in range(9):
        assert setup.send("web01", "load", "--count", "2000").returncode == 0
    status = json.loads(minion_cli("status", "-c", config).stdout)
    assert status["outbox"]["depth"] == 1000
    assert status["outbox"]["dropped"] == 19000
    assert rss_kib(minion.proc.pid) - minion_rss < 20_000  # KiB: the backlog is on disk, bounded

    master = setup.start_master(level="info")
    wait_until(lambda: len(setup.events("--tag", "minion/web01/load")) >= 1000, 60, "the kept 1000 events")
    events = setup.events("--tag", "minion/web01/load")
    assert sorted(e["data"]["n"] for e in events) == list(range(1001, 2001))
    assert setup.counters()["events.lost_by_minion"] == 19000
    assert rss_kib(master.proc.pid) - master_rss < 40_000


def test_refuse_policy_refuses_new_events_when_full(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01", outbox={"max_events": 10, "when_full": "refuse"})
    setup.accept_all("web01")
    setup.daemons[0].stop()
    assert setup.send("web01", "load", "--count", "10").returncode == 0
    refused = setup.send("web01", "load")
    assert refused.returncode == 1 and "refusing" in refused.stderr


def test_event_cli_errors(setup: Setup) -> None:
    setup.start_master()
    assert setup.cli("event", "fire", "reactor/key/x/accepted").returncode == 2
    assert setup.cli("event", "fire", "bad tag").returncode == 2
    assert setup.cli("event", "fire", "ok/tag", "--data", "[1]").returncode == 2
    assert setup.cli("event", "show", "nope").returncode == 1
    assert setup.cli("event", "list", "--since", "yesterday-ish").returncode == 2
    missing = run_cli("event", "send", "x", "-c", str(setup.minion_yaml("nobody")))
    assert missing.returncode == 3 and "no minion is listening" in missing.stderr
