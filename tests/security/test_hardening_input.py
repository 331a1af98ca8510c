"""One hostile value past the decoders used to end the master: numbers no column holds, grains
nested past every limit, times no clock shows. Each is sent by a tampered client holding an
accepted key (or, for grains, by anyone who may say hello), again and again as its durable
outbox would after every restart; the master drops and counts it, and keeps serving."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from typing import Any

from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.events import MAX_DATA_DEPTH
from tests.peers import RawPeer, master_key
from tests.security.helpers import (
    RawMinion,
    after_attack,
    honest_traffic,
    minion_keys,
    running,
)
from tests.support import Setup, wait_until

INT64_MAX = 2**63 - 1
YEAR_3000 = 32503680000.0  # the latest time a message may carry (docs/security.md, Limits)


def _malformed(setup: Setup) -> int:
    return setup.counters().get("drop.malformed", 0)


def _sent_until_counted(setup: Setup, send: Any, frames: list[bytes], rounds: int) -> None:
    """Send ``frames`` again and again (an outbox re-sending) until the master counted ``rounds``
    passes of them as malformed."""
    goal = _malformed(setup) + rounds * len(frames)

    def counted() -> bool:
        for frame in frames:
            send(frame)
        return _malformed(setup) >= goal

    wait_until(counted, 30, f"{rounds} passes of {len(frames)} frames to be counted as malformed")


def _deep_hello(minion_id: str, depth: int) -> bytes:
    """A hello whose grains nest ``depth`` levels, written byte by byte (msgpack's own packer
    refuses to go past 511 levels; an attacker's does not)."""
    grains = b"\x81\xa1a" * (depth - 1) + b"\x80"
    rest = {"version": "x", "functions": [], "protocol": 1}
    head = b"\x92" + codec.pack("hello") + b"\x85" + codec.pack("id") + codec.pack(minion_id)
    return head + codec.pack("grains") + grains + codec.pack(rest)[1:]  # the map's entries, not its header


def _auto_accepting(setup: Setup, minion_id: str) -> None:
    """Master up with ``auto_accept: true``, and this minion up (nobody accepted it)."""
    setup.edit_master(auto_accept=True)
    running(setup)
    setup.start_minion(minion_id)
    wait_until(lambda: setup.presence(minion_id) == "up", 20, f"{minion_id} up")


def _nested(depth: int) -> dict[str, Any]:
    """A map that nests ``depth`` levels (itself included)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- 1. numbers no SQLite column holds, and times that are not numbers ------------------------------


def test_event_batches_with_seq_or_base_past_int64_or_a_nan_time_are_dropped_not_fatal(setup: Setup) -> None:
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    now, tag = time.time(), "minion/evil/x"

    def batch(epoch: str, base: int, *events: list[Any]) -> bytes:
        return codec.pack(["events", {"epoch": epoch, "base": base, "events": list(events)}])

    poison = [
        batch("a", 1, [2**63, tag, now, {}, None]),
        batch("b", 2**63, [2**63, tag, now, {}, None]),
        batch("c", 2**64 - 1, []),
        batch("d", 1, [1, tag, math.nan, {}, None]),
        batch("e", 1, [1, tag, math.inf, {}, None]),
    ]
    try:
        with honest_traffic(setup, "web02") as sent:
            _sent_until_counted(setup, evil.pub.send, poison, rounds=5)
            # the boundary itself is a value like any other: stored, acknowledged, shown
            evil.deliver("edge", [[INT64_MAX, "minion/evil/edge", now, {"n": INT64_MAX}, None]], 1)
            evil.deliver("after", [[1, "minion/evil/after", now, {}, None]], 1)
    finally:
        evil.close()
    after_attack(setup, "web02", sent)
    logged = {e["tag"]: e for e in setup.events("--source", "evil")}
    assert set(logged) == {"minion/evil/edge", "minion/evil/after"}
    assert logged["minion/evil/edge"]["seq"] == INT64_MAX
    assert logged["minion/evil/edge"]["data"] == {"n": INT64_MAX}


def test_a_return_with_retcode_past_int64_or_nan_times_is_dropped_not_fatal(setup: Setup) -> None:
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    answer: dict[str, subprocess.CompletedProcess[str]] = {}
    job = threading.Thread(
        target=lambda: answer.update(run=setup.cli("run", "-L", "evil", "test.echo", "hi", "--json"))
    )
    try:
        with honest_traffic(setup, "web02") as sent:
            job.start()
            wait_until(
                lambda: evil.read(0.2) or any(c.fun == "test.echo" for c in evil.commands), 20, "the command"
            )
            jid = next(c.jid for c in evil.commands if c.fun == "test.echo")

            def ret(**changes: Any) -> bytes:
                body = {"jid": jid, "id": "evil", "success": True, "retcode": 0, "ret": "hi", "error": None}
                return codec.pack(["return", {**body, "started": 1.0, "finished": 2.0, **changes}])

            poison = [
                ret(retcode=2**63),
                ret(retcode=2**64 - 1),
                ret(started=math.nan, finished=math.nan),
                ret(finished=math.inf),
                ret(started=1e300),
            ]
            _sent_until_counted(setup, evil.peer.send, poison, rounds=5)
            evil.read(1.0)  # what the master answered meanwhile
            assert evil.return_acks == []  # nothing of it was stored
            evil.peer.send(ret(retcode=INT64_MAX))  # the boundary is stored like any value
            assert evil.read(10, until=lambda x: isinstance(x, m.ReturnAck)), "no return_ack"
            job.join(30)
    finally:
        evil.close()
    after_attack(setup, "web02", sent)
    assert answer["run"].returncode == 0, answer["run"].stderr
    shown = setup.cli_json("jobs", "show", jid)
    assert shown["returns"]["evil"]["retcode"] == INT64_MAX
    assert shown["returns"]["evil"]["return"] == "hi"


# -- 2. grains nested past every limit, and grains too large to keep -------------------------------


def test_a_hello_with_grains_nested_1000_deep_is_dropped_from_any_key(setup: Setup) -> None:
    _auto_accepting(setup, "web02")
    grains = setup.cli_json("minions")[0]["grains"]
    accepted = RawPeer(setup.ports[1], master_key(setup.root), minion_keys(setup, "web02"))
    strangers = [RawPeer(setup.ports[1], master_key(setup.root)) for _ in range(3)]
    peers = [accepted, *strangers]
    frames = [_deep_hello(i, 1000) for i in ("web02", "new00", "new01", "new02")]  # web02: its own id
    try:
        with honest_traffic(setup, "web02") as sent:
            goal = _malformed(setup) + 5 * len(frames)

            def counted() -> bool:
                for peer, frame in zip(peers, frames, strict=True):
                    peer.send(frame)
                return _malformed(setup) >= goal

            wait_until(counted, 30, "the deep hellos to be counted")
            assert [p.recv(timeout=0.5) for p in peers] == [None] * 4  # no welcome: not even read
    finally:
        for peer in peers:
            peer.close()
    after_attack(setup, "web02", sent)
    assert setup.cli_json("key", "list")["accepted"] == ["web02"]  # auto_accept stored no stranger
    assert [(x["id"], x["grains"]) for x in setup.cli_json("minions")] == [("web02", grains)]


def test_key_accept_of_a_minion_with_grains_at_the_depth_limit_is_all_or_nothing(setup: Setup) -> None:
    running(setup, "web02")
    too_deep = RawPeer(setup.ports[1], master_key(setup.root))
    at_limit = RawPeer(setup.ports[1], master_key(setup.root))
    try:
        with honest_traffic(setup, "web02") as sent:
            too_deep.send(m.Hello(id="deep", grains={"a": _nested(MAX_DATA_DEPTH)}, version="x"))
            at_limit.send(m.Hello(id="edge", grains=_nested(MAX_DATA_DEPTH), version="x"))
            welcome = at_limit.recv()
            assert isinstance(welcome, m.Welcome) and welcome.status == "pending"
            assert too_deep.recv(timeout=0.5) is None
            assert setup.key_state("deep") is None  # never stored, so nothing to accept
            refused = setup.cli("key", "accept", "deep")
            accepted = setup.cli("key", "accept", "edge")
            pushed = at_limit.recv()
    finally:
        too_deep.close()
        at_limit.close()
    after_attack(setup, "web02", sent)
    assert refused.returncode == 1 and "internal error" not in refused.stderr, refused.stderr
    assert setup.key_state("deep") is None
    assert accepted.returncode == 0, accepted.stderr
    assert isinstance(pushed, m.Welcome) and pushed.status == "accepted"
    assert setup.key_state("edge") == "accepted"
    (edge,) = [x for x in setup.cli_json("minions") if x["id"] == "edge"]
    assert edge["grains"] == _nested(MAX_DATA_DEPTH)


def test_grains_over_64_kib_are_replaced_by_a_note_and_the_minion_still_joins(setup: Setup) -> None:
    _auto_accepting(setup, "web02")
    big = {f"g{n}": "x" * 1000 for n in range(200)}  # about 200 KB
    auto = RawPeer(setup.ports[1], master_key(setup.root))
    try:
        with honest_traffic(setup, "web02") as sent:
            auto.send(m.Hello(id="big", grains=big, version="x"))
            welcome = auto.recv()
    finally:
        auto.close()
    after_attack(setup, "web02", sent)
    assert isinstance(welcome, m.Welcome) and welcome.status == "accepted"
    (shown,) = [x for x in setup.cli_json("minions") if x["id"] == "big"]
    assert list(shown["grains"]) == ["grains_dropped"]
    assert "bytes, more than the 65536" in shown["grains"]["grains_dropped"]


# -- 3. times no clock can show -------------------------------------------------------------------


def _watch(setup: Setup) -> subprocess.Popen[str]:
    watch = subprocess.Popen(
        [sys.executable, "-m", "reactord", "event", "watch", "--json", "-c", str(setup.master_yaml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stderr is not None
    assert "watching" in watch.stderr.readline()  # live
    return watch


def test_event_times_outside_1970_to_3000_are_dropped_and_watch_and_show_keep_working(setup: Setup) -> None:
    running(setup, "web02")
    evil = RawMinion(setup, "evil")
    watch = _watch(setup)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stdout or []), daemon=True)
    reader.start()
    tag = "minion/evil/t"
    poison = [
        codec.pack(["events", {"epoch": f"p{n}", "base": 1, "events": [[1, tag, when, {}, None]]}])
        for n, when in enumerate([1e300, -1e300, -1.0, YEAR_3000 + 1, 2**63, -(2**63)])
    ]
    try:
        with honest_traffic(setup, "web02") as sent:
            _sent_until_counted(setup, evil.pub.send, poison, rounds=5)
            # the bounds themselves are times like any other
            edges = [[1, f"{tag}/0", 0.0, {}, None], [2, f"{tag}/3000", YEAR_3000, {}, None]]
            evil.deliver("edges", edges, 1)
        after_attack(setup, "web02", sent)
        assert setup.send("web02", "app/after").returncode == 0
        wait_until(
            lambda: (
                {json.loads(x)["tag"] for x in list(lines)}
                >= {*sent, "minion/web02/app/after", f"{tag}/0", f"{tag}/3000"}
            ),
            10,
            "the watch to print the honest events, before and after, and both edges",
        )
        assert watch.poll() is None, watch.stderr.read() if watch.stderr else ""
    finally:
        evil.close()
        watch.terminate()
        watch.wait(10)
        reader.join(10)
        for pipe in (watch.stdout, watch.stderr):
            if pipe is not None:
                pipe.close()
    for event in setup.events():
        shown = setup.cli("event", "show", event["id"])
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (event, shown.stderr)
    times = {e["tag"]: e["time"] for e in setup.events("--source", "evil")}
    assert times == {f"{tag}/0": 0.0, f"{tag}/3000": YEAR_3000}
