from __future__ import annotations

import json
from pathlib import Path

from tests.cluster.masters import Cluster
from tests.cluster.natsserver import NatsServer
from tests.support import wait_until


def test_smoke(nats_server: NatsServer, tmp_path: Path) -> None:
    c = Cluster.create(tmp_path, [nats_server], count=2)
    try:
        c.start(0)
        c.share_master_keys()
        c.start(1)
        c.wait_owned()
        c.start_minion("web01", [0, 1])
        c.start_minion("web02", [1, 0])
        a, b = c.masters
        wait_until(lambda: {"web01", "web02"} <= set(b.cli_json("key", "list")["pending"]), 20, "pending on b")
        assert a.cli("key", "accept", "--all", "-y").returncode == 0
        wait_until(lambda: b.key_state("web01") == "accepted", 5, "accepted on b")
        wait_until(lambda: sorted(m["id"] for m in b.cli_json("minions") if m["presence"] == "up") == ["web01", "web02"], 20, "both up on b")
        for m in (a, b):
            r = m.cli("run", "*", "test.ping", "--json", "--timeout", "10")
            assert r.returncode == 0, r.stdout + r.stderr
            assert sorted(json.loads(r.stdout)["returns"]) == ["web01", "web02"], r.stdout
        assert a.send("web01", "app/x", "--count", "5").returncode == 0
        wait_until(lambda: len(b.events("--tag", "minion/web01/app/*")) == 5, 20, "b has them")
        assert [e["id"] for e in a.events()] == [e["id"] for e in b.events()]
        print(json.dumps(c.status(0), indent=1))
        print(b.cli("minions").stdout)
    finally:
        print(c.masters[0].root.joinpath("master.log").read_text()[-3000:])
        print(c.masters[1].root.joinpath("master.log").read_text()[-3000:])
        assert not c.close()
