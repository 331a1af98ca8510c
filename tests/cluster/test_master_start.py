"""A master in cluster mode that cannot use its engine exits 2 with one line saying why,
before it binds anything: through the real CLI, against real nats-servers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import natsserver
from tests.cluster.natsserver import NatsServer
from tests.support import Setup, free_ports

pytestmark = pytest.mark.slow


def _start(setup: Setup) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactord", "master", "-c", str(setup.master_yaml), "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=setup.root,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unreachable_engine_ends_the_master_with_exit_2_and_one_line(tmp_path: Path) -> None:
    setup = Setup.create(tmp_path)
    (port,) = free_ports(1)
    setup.edit_master(cluster={"servers": [f"nats://127.0.0.1:{port}"], "connect_timeout": "1s"})
    line = _one_line(_start(setup))
    assert f"cannot reach the cluster's engine at nats://127.0.0.1:{port} within 1s" in line, line


def test_an_engine_older_than_2_11_ends_the_master_with_exit_2_and_one_line(tmp_path: Path) -> None:
    binary, version = natsserver.find_old_binary()
    if binary is None:
        pytest.skip(version)
    server = natsserver.single(binary, tmp_path)
    server.start()
    try:
        setup = Setup.create(tmp_path / "setup")
        setup.edit_master(cluster={"servers": [server.url]})
        line = _one_line(_start(setup))
    finally:
        natsserver.stop_all([server])
    assert f"nats-server {version.lstrip('v')}; cluster mode needs 2.11 or newer" in line, line


def test_a_master_set_for_another_partition_count_exits_2_and_says_which(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    first = Setup.create(tmp_path / "a")
    first.edit_master(cluster={"servers": [nats_server.url], "partitions": 8, "name": "a"})
    daemon = first.start_master()
    second = Setup.create(tmp_path / "b")
    second.edit_master(cluster={"servers": [nats_server.url], "partitions": 16, "name": "b"})
    line = _one_line(_start(second))
    assert "created with 8 partitions, this master is set for 16" in line, line
    assert daemon.alive()
    assert not first.close()


def test_cluster_status_on_a_single_master_says_it_is_not_in_a_cluster(tmp_path: Path) -> None:
    setup = Setup.create(tmp_path)
    setup.start_master()
    result = setup.cli("cluster", "status")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "this master is not in a cluster" in result.stderr
    assert not setup.close()


def test_more_replicas_than_engine_servers_exits_2_at_once_and_says_why(
    nats_cluster: list[NatsServer], tmp_path: Path
) -> None:
    """Five copies asked of a three-node engine: a refusal no wait lifts (unlike a peer not
    heard from yet while a cluster forms, which the master waits out), so one line, at once."""
    setup = Setup.create(tmp_path / "setup")
    setup.edit_master(cluster={"servers": [s.url for s in nats_cluster], "replicas": 5})
    started = time.monotonic()
    line = _one_line(_start(setup))
    assert time.monotonic() - started < 20, line  # not the 30 s a transient refusal is waited
    assert "no suitable peers for placement" in line and "replicas: 5" in line, line
