"""Three masters share six minions through three clustered nats-servers (R3): real processes,
127.0.0.1-3 only (docs/cluster.md).

What holds: a job from any master reaches every minion, whichever master holds it; a key
accepted on one master lets a minion in on another; the event log, the fleet state, the
jobs and the minions' masters read the same on every master."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.masters import Cluster, address
from tests.cluster.natsserver import NatsServer
from tests.support import wait_until

pytestmark = pytest.mark.slow

MINIONS = {f"web0{n}": [n % 3, (n + 1) % 3, (n + 2) % 3] for n in range(1, 7)}
RULES = {
    "rules": [
        {
            "name": "relay",
            "on": "minion/*/app/load",
            "do": [{"fire": "relay/load", "data": {"n": "{{ data.n }}"}}],
        }
    ]
}


@pytest.fixture
def cluster(nats_cluster: list[NatsServer], tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster.create(tmp_path, nats_cluster, count=3)
    made.rules(json.dumps(RULES))
    try:
        made.start_all()
        yield made
    finally:
        unclean = made.close()
    assert not unclean, "\n".join(unclean)


def _same_everywhere(cluster: Cluster, read: Any, what: str, timeout: float = 30) -> Any:
    """Wait until ``read(master)`` is the same on every master; that value."""
    views: list[Any] = []

    def agree() -> bool:
        views[:] = [read(m) for m in cluster.masters]
        return all(v == views[0] for v in views)

    try:
        wait_until(agree, timeout, f"{what} to agree on every master")
    except AssertionError as error:
        shown = "\n".join(f"  m{i}: {v!r}" for i, v in enumerate(views))
        raise AssertionError(f"{error}; what each master read:\n{shown}") from None
    return views[0]


def test_six_minions_on_three_masters_answer_any_master_and_every_master_reads_alike(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.masters
    for minion_id, order in MINIONS.items():
        cluster.start_minion(minion_id, order)
    on_c = [m for m, order in MINIONS.items() if order[0] == 2]
    wait_until(lambda: set(on_c) <= set(c.cli_json("key", "list")["pending"]), 30, "C's minions pending on C")
    wait_until(
        lambda: set(MINIONS) <= set(a.cli_json("key", "list")["pending"]), 30, "every key pending on A"
    )

    # accepted on A: the minions connected to C are let in on C within a second (each poll
    # here starts a CLI process, a few tenths of a second of its own)
    accepted = a.cli("key", "accept", "web0*", "-y", "--json")
    assert accepted.returncode == 0, accepted.stderr
    since = time.monotonic()
    wait_until(lambda: all(c.key_state(m) == "accepted" for m in on_c), 5, "C to see the accepts")
    assert time.monotonic() - since < 1.5
    for master in cluster.masters:
        wait_until(
            lambda master=master: (
                sorted(m["id"] for m in master.cli_json("minions") if m["presence"] == "up")
                == sorted(MINIONS)
            ),
            30,
            f"all six up on {master.root.name}",
        )

    # each minion is on the first master of its list, and every master says so
    holders = _same_everywhere(
        cluster, lambda m: {x["id"]: x.get("master") for x in m.cli_json("minions")}, "the minions' masters"
    )
    assert holders == {minion_id: f"m{order[0]}" for minion_id, order in MINIONS.items()}
    table = b.cli("minions").stdout
    assert "MASTER" in table.splitlines()[0].upper(), table
    for minion_id, order in MINIONS.items():
        status = cluster.minion_status(minion_id)
        assert status["master"] == address(order[0]) and status["status"] == "accepted", status

    # a job from each master returns all six
    jids = []
    for master in cluster.masters:
        ran = master.cli("run", "*", "test.ping", "--json", "--timeout", "20")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        result = json.loads(ran.stdout)
        assert sorted(result["returns"]) == sorted(MINIONS), result
        assert all(r["return"] is True for r in result["returns"].values()), result
        jids.append(result["jid"])

    # events sent on the minions: the same log, the same state, the same jobs on every master
    for minion_id in MINIONS:
        assert a.send(minion_id, "app/load", "--count", "20").returncode == 0
    log = _same_everywhere(cluster, lambda m: [(e["id"], e["tag"]) for e in m.events()], "the event log")
    for minion_id in MINIONS:
        assert [t for _, t in log if t == f"minion/{minion_id}/app/load"] == [
            f"minion/{minion_id}/app/load"
        ] * 20
    assert {t for _, t in log} >= {f"reactor/job/{jid}/new" for jid in jids}
    state = _same_everywhere(
        cluster,
        lambda m: sorted((r["source"], r["tag"], r["id"]) for r in m.cli_json("state")["rows"]),
        "the fleet state",
    )
    assert {(s, t) for s, t, _ in state} >= {(m, f"minion/{m}/app/load") for m in MINIONS}
    listed = _same_everywhere(
        cluster,
        lambda m: sorted((j["jid"], tuple(sorted(j["minions"]))) for j in m.cli_json("jobs")),
        "the jobs",
    )
    assert set(jids) <= {jid for jid, _ in listed}  # and those the example rules started
    for jid in jids:
        shown = c.cli_json("jobs", "show", jid)
        assert sorted(shown["returns"]) == sorted(MINIONS), shown

    # each event's rule ran once, whichever master owns its source; the same on every master
    loads = {e["id"] for e in a.events("--tag", "minion/*/app/load")}
    relays = _same_everywhere(
        cluster, lambda m: sorted(e["causation"] for e in m.events("--tag", "relay/load")), "relays"
    )
    assert sorted(relays) == sorted(loads)
    event_id = sorted(loads)[0]
    # an action's end (its done record) follows the event it fired in the stream: wait for it
    _same_everywhere(cluster, lambda m: m.cli_json("event", "show", event_id), "the event's chain")
    assert (
        a.cli_json("rules", "explain", event_id)["recorded"]
        == c.cli_json("rules", "explain", event_id)["recorded"]
    )

    # a replay runs on the master it was asked of, owner of the source or not
    replayed = c.cli("event", "replay", "--source", "web01", "--tag", "minion/web01/app/load", "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    web01 = {e["id"] for e in a.events("--tag", "minion/web01/app/load")}
    wait_until(
        lambda: (
            sorted(e["causation"] for e in b.events("--tag", "relay/load") if e["causation"] in web01)
            == sorted([*web01, *web01])
        ),
        30,
        "the replay's relays, once each, on B",
    )

    status = cluster.status(1)
    assert sorted(status["members"]) == ["m0", "m1", "m2"]
    assert sum(len(p) for p in status["owners"].values()) == status["partitions"]
    assert status["engine"]["version"].startswith("2.")
    streams = {s["stream"]: s for s in status["streams"]}
    assert len(streams["RDEV"]["replicas"]) == 2  # R3: the leader and two followers
