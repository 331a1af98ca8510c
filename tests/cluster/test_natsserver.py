"""The nats-server fixtures themselves: they start what they say, where they say, and stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster import natsserver
from tests.cluster.natsserver import NatsServer


def test_a_single_server_runs_jetstream_on_loopback_with_its_store_in_the_test_folder(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    varz = nats_server.monitor("varz")
    assert varz["host"] == "127.0.0.1" and varz["port"] == nats_server.port
    assert tuple(int(n) for n in varz["version"].split(".")[:2]) >= natsserver.MIN_VERSION
    assert Path(varz["jetstream"]["config"]["store_dir"]).is_relative_to(tmp_path)


def test_stop_ends_the_process_with_sigterm(nats_binary: Path, tmp_path: Path) -> None:
    server = natsserver.single(nats_binary, tmp_path)
    server.start()
    assert server.stop() == 0
    assert not server.alive()


@pytest.mark.slow
def test_three_servers_form_one_cluster_with_one_meta_leader(nats_cluster: list[NatsServer]) -> None:
    names = {s.name for s in nats_cluster}
    leaders = set()
    for server in nats_cluster:
        meta = server.monitor("jsz")["meta_cluster"]
        assert meta["name"] == natsserver.CLUSTER_NAME and meta["cluster_size"] == 3
        leaders.add(meta["leader"])
        peers = {route["remote_name"] for route in server.monitor("routez")["routes"]}
        assert peers == names - {server.name}
    assert len(leaders) == 1 and leaders <= names
