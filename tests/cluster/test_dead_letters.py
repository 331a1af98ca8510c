"""Dead letters are the same on every master of a cluster: made on the partition's owner,
listed everywhere, retried from any master with the outcome seen on all. Real masters, a
real nats-server, a real minion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.masters import Cluster
from tests.cluster.natsserver import NatsServer
from tests.support import wait_until

pytestmark = pytest.mark.slow

RULES = {
    "rules": [
        {
            "name": "broken",
            "on": "minion/*/app/fail",
            "do": [{"exec": ["/nonexistent/reactord-test-program"], "retry": {"attempts": 1}}],
        }
    ]
}


def test_a_dead_letter_is_listed_and_retried_on_every_master(nats_server: NatsServer, tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, [nats_server], count=2)
    cluster.rules(json.dumps(RULES))
    try:
        cluster.start_all()
        a, b = cluster.masters
        cluster.start_minion("web01", [0, 1])
        a.accept_all("web01")
        assert a.send("web01", "app/fail").returncode == 0

        def listed(master: object) -> list[dict[str, object]]:
            return master.cli_json("deadletters", "list")  # type: ignore[attr-defined,no-any-return]

        for master in cluster.masters:
            wait_until(
                lambda master=master: len(listed(master)) == 1, 30, f"the dead letter on {master.root.name}"
            )
        letter = listed(a)[0]
        assert listed(b)[0]["id"] == letter["id"] and letter["attempts"] == 1, (letter, listed(b))

        retried = b.cli("deadletters", "retry", str(letter["id"]))
        assert retried.returncode != 0, retried.stdout  # the program is still missing
        for master in cluster.masters:
            wait_until(
                lambda master=master: listed(master)[0]["attempts"] == 2,
                30,
                f"the retry seen on {master.root.name}",
            )
    finally:
        unclean = cluster.close()
    assert not unclean, "\n".join(unclean)
