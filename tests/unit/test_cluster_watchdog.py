"""The consumer watchdog of cluster mode (nats-server #5576, #6290: a consumer that has records
pending and delivers nothing): its decision, with a fake engine (the real consumer is
exercised by tests/cluster)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from reactord.base.config import ClusterConfig
from reactord.base.stats import Stats
from reactord.cluster.node import ClusterNode


class _Engine:
    def __init__(self, last: int) -> None:
        self.last = last

    async def last_seq(self) -> int:
        return self.last


def _node(last: int, applied: int, silent_for: float) -> tuple[ClusterNode, list[int]]:
    node = ClusterNode.__new__(ClusterNode)  # only what the watchdog reads
    node.config = ClusterConfig(servers=["nats://127.0.0.1:4222"], watchdog=1.0)
    node.stats = Stats()
    node.applied = applied
    node._inbox = asyncio.Queue()
    node._last_delivery = time.monotonic() - silent_for
    node.engine = _Engine(last)  # type: ignore[assignment]
    recreated: list[int] = []

    async def follow() -> None:
        recreated.append(node.applied)
        node._last_delivery = time.monotonic()

    node._follow = follow  # type: ignore[method-assign]
    return node, recreated


async def _watch(node: ClusterNode, until: float) -> None:
    task = asyncio.create_task(node._watchdog())
    try:
        await asyncio.sleep(until)  # the watchdog checks every third of its limit: two checks
    finally:
        task.cancel()


def test_a_silent_consumer_with_records_pending_is_recreated_once_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node, recreated = _node(last=20, applied=10, silent_for=5.0)
    with caplog.at_level(logging.WARNING, logger="reactord.cluster"):
        asyncio.run(_watch(node, 0.8))
    assert recreated == [10]
    assert node.stats.snapshot()["cluster.consumer_recreated"] == 1
    assert "delivered nothing for 1s with 10 records pending; recreating it" in caplog.text


def test_a_consumer_that_is_caught_up_or_delivering_is_left_alone() -> None:
    caught_up, recreated = _node(last=10, applied=10, silent_for=5.0)
    asyncio.run(_watch(caught_up, 0.8))
    assert recreated == [] and "cluster.consumer_recreated" not in caught_up.stats.snapshot()
    delivering, recreated = _node(last=20, applied=10, silent_for=0.0)
    asyncio.run(_watch(delivering, 0.5))
    assert recreated == []
