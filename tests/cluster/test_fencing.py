"""A partition's owner paused past its lease (SIGSTOP), its successor taking over, then the
paused owner woken (SIGCONT): its writes to the partition's fence and its claims of actions
are refused and counted, and no action runs twice. Real masters, a real nats-server."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactord.cluster.subjects import partition_of
from tests.cluster.masters import Cluster
from tests.cluster.natsserver import NatsServer
from tests.support import Setup, wait_until

pytestmark = pytest.mark.slow

PARTITIONS = 8
WRITE = "import sys, time; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); time.sleep(float(sys.argv[3]))"


def _rules(ran: Path) -> str:
    """Every app/tick: a local program records that it ran (and takes ``data.pause``
    seconds), then an event is fired. Both are actions the owner runs once."""
    return json.dumps(
        {
            "rules": [
                {
                    "name": "relay",
                    "on": "minion/*/app/tick",
                    "do": [
                        {
                            "exec": [sys.executable, "-c", WRITE, str(ran), "{{ id }}", "{{ data.pause }}"],
                            "timeout": "5s",
                        },
                        {"fire": "relay/done", "data": {"n": "{{ data.n }}"}},
                    ],
                }
            ]
        }
    )


@pytest.fixture
def cluster(nats_server: NatsServer, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster.create(tmp_path, [nats_server], count=2, partitions=PARTITIONS)
    made.rules(_rules(tmp_path / "ran.txt"))
    try:
        made.start_all()
        yield made
    finally:
        for daemon in made.daemons.values():
            if daemon.alive():
                daemon.proc.send_signal(signal.SIGCONT)
        unclean = made.close()
    assert not unclean, "\n".join(unclean)


def _relayed(master: Setup) -> Counter[int]:
    return Counter(int(e["data"]["n"]) for e in master.events("--tag", "relay/done"))


def _send(master: Setup, first: int, last: int, pause: float = 0) -> None:
    for n in range(first, last + 1):
        sent = master.send("web01", "app/tick", "-d", f"n={n}", "-d", f"pause={pause}")
        assert sent.returncode == 0, sent.stderr


def test_a_paused_owner_is_fenced_off_when_it_wakes_and_nothing_runs_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    ran = tmp_path / "ran.txt"
    p = partition_of("web01", PARTITIONS)
    owner_name = next(m for m, owned in cluster.status(0)["owners"].items() if p in owned)
    owner, other = (0, 1) if owner_name == "m0" else (1, 0)
    a, b = cluster.masters[owner], cluster.masters[other]
    cluster.start_minion("web01", [other, owner])  # on the master that does not own it
    cluster.masters[0].accept_all("web01")

    _send(a, 1, 5)
    wait_until(lambda: _relayed(b) == Counter(range(1, 6)), 30, "ticks 1-5 relayed")

    # the owner starts a slow action, and is paused while it runs
    _send(a, 6, 6, pause=3)
    wait_until(lambda: ran.exists() and len(ran.read_text().split()) == 6, 30, "the owner to start tick 6")
    cluster.daemons[owner].proc.send_signal(signal.SIGSTOP)
    _send(a, 7, 11)

    # the other master takes the partition over after the lease TTL and runs what comes
    wait_until(lambda: p in cluster.status(other)["owned"], 30, "the successor to own the partition")
    wait_until(lambda: set(_relayed(b)) >= set(range(7, 12)), 30, "ticks 7-11 relayed by the successor")

    cluster.daemons[owner].proc.send_signal(signal.SIGCONT)
    wait_until(
        lambda: a.counters().get("cluster.fenced_writes", 0) >= 1, 30, "the woken owner's fence write refused"
    )
    wait_until(lambda: a.counters().get("cluster.intents_refused", 0) >= 1, 30, "its claims refused")
    # (the woken master is live again: rendezvous hands the partition back to it after that)

    # every tick relayed exactly once, on every master; every program run exactly once
    wait_until(lambda: _relayed(a) == Counter(range(1, 12)) == _relayed(b), 40, "all eleven, once each")
    runs = Counter(ran.read_text().split())
    assert len(runs) == 11 and set(runs.values()) == {1}, runs
    assert a.counters().get("cluster.fenced_writes", 0) >= 1
