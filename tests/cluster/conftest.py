"""Fixtures of the cluster tests: real nats-servers (one, or three clustered with JetStream) on
free 127.0.0.1 ports, stopped at the end; skipped with the reason when there is no usable binary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import natsserver
from tests.cluster.natsserver import NatsServer


@pytest.fixture(scope="session")
def nats_binary() -> Path:
    binary, why = natsserver.find_binary()
    if binary is None:
        pytest.skip(why)
    return binary


@pytest.fixture
def nats_server(nats_binary: Path, tmp_path: Path) -> Iterator[NatsServer]:
    """One nats-server with JetStream, healthy."""
    server = natsserver.single(nats_binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        unclean = natsserver.stop_all([server])
    assert not unclean, "\n".join(unclean)


@pytest.fixture
def nats_cluster(nats_binary: Path, tmp_path: Path) -> Iterator[list[NatsServer]]:
    """Three nats-servers routed into one cluster with JetStream, all healthy."""
    servers = natsserver.cluster(nats_binary, tmp_path)
    try:
        natsserver.start_all(servers)
        yield servers
    finally:
        unclean = natsserver.stop_all(servers)
    assert not unclean, "\n".join(unclean)
