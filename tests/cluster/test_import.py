"""``reactord cluster import``: a single master's keys, fleet state, recent events and rule
state copied into a fresh cluster, through the real CLI, a real nats-server and real
masters; a second import is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cluster.masters import Cluster, address
from tests.cluster.natsserver import NatsServer
from tests.support import Setup, minion_cli, run_cli, wait_until

pytestmark = pytest.mark.slow

RULES = {
    "rules": [
        {
            "name": "first-deploy",
            "on": "minion/*/app/deployed",
            "throttle": {"once_within": "1h", "key": "{{ source }}"},
            "do": [{"fire": "ops/first-deploy", "data": {"from": "{{ source }}"}}],
        }
    ]
}


def test_a_single_masters_state_goes_into_a_fresh_cluster_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    single = Setup.create(tmp_path / "single", "web01")
    (single.root / "reactor.d" / "rules.yaml").write_text(json.dumps(RULES))
    single.start_master()
    single.start_minion("web01")
    single.accept_all("web01")
    assert single.send("web01", "app/deployed", "-d", "version=1").returncode == 0
    wait_until(lambda: len(single.events("--tag", "ops/first-deploy")) == 1, 20, "the first deploy noticed")
    before = {e["id"] for e in single.events()}
    assert not single.close()

    cluster = Cluster.create(tmp_path / "cluster", [nats_server], count=2)
    cluster.rules(json.dumps(RULES))
    for master in cluster.masters:  # the cluster presents the single master's key, as upgraded
        target = master.root / "pki" / "master"
        target.mkdir(parents=True, mode=0o700, exist_ok=True)
        for key in (single.root / "pki" / "master").glob("master*"):
            shutil.copy2(key, target / key.name)
    imported = run_cli(
        "cluster",
        "import",
        "--from",
        str(single.master_yaml),
        "-c",
        str(cluster.masters[0].master_yaml),
        "--json",
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    counts = json.loads(imported.stdout)
    assert counts["keys"] == 1 and counts["events"] == len(before) and counts["rule_state_rows"] >= 1, counts

    again = run_cli(
        "cluster", "import", "--from", str(single.master_yaml), "-c", str(cluster.masters[1].master_yaml)
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "the cluster is not fresh" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    try:
        cluster.start(0)
        cluster.start(1)
        cluster.wait_owned()
        for master in cluster.masters:
            wait_until(
                lambda master=master: master.key_state("web01") == "accepted", 10, "the key on every master"
            )
            wait_until(
                lambda master=master: before <= {e["id"] for e in master.events()},
                20,
                "the events on every master",
            )
            rows = master.cli_json("state", "--source", "web01")["rows"]
            assert {r["tag"] for r in rows} >= {"minion/web01/app/deployed"}, rows
        # nothing imported was decided again: the one ops/first-deploy is the single master's
        assert len(cluster.masters[1].events("--tag", "ops/first-deploy")) == 1

        # the minion, now pointed at the cluster: the throttle it tripped still holds
        event, command, key = cluster.masters[0].ports
        single.start_minion(
            "web01", master=[address(1), address(0)], event_port=event, command_port=command, key_port=key
        )
        wait_until(lambda: _minion_status(single) == "accepted", 30, "the minion accepted by the cluster")
        assert single.send("web01", "app/deployed", "-d", "version=2").returncode == 0
        for master in cluster.masters:
            wait_until(
                lambda master=master: len(master.events("--tag", "minion/web01/app/deployed")) == 2,
                30,
                "the second deploy on every master",
            )
        second = cluster.masters[0].events("--tag", "minion/web01/app/deployed")[-1]
        for master in cluster.masters:
            recorded = master.cli_json("rules", "explain", second["id"])["recorded"]
            mine = [d for d in recorded if d["rule"] == "first-deploy"]
            assert len(mine) == 1 and not mine[0]["fired"], recorded
            assert mine[0]["reason"].startswith("throttle: fired"), recorded
        assert len(cluster.masters[0].events("--tag", "ops/first-deploy")) == 1
    finally:
        unclean = cluster.close() + single.close()
        assert not unclean, "\n".join(unclean)


def _minion_status(setup: Setup) -> str | None:
    result = minion_cli("status", "-c", str(setup.root / "minion-web01.yaml"), timeout=30)
    return str(json.loads(result.stdout)["status"]) if result.returncode == 0 else None
