"""Partition leases against a real nats-server: one owner at a time, renewal by
compare-and-set, a stale holder fenced off, a successor after the TTL, a release."""

from __future__ import annotations

import asyncio
import time

import pytest

from reactord.cluster.engine import Layout
from reactord.cluster.leases import Lease, PartitionLeases
from tests.cluster.natsserver import NatsServer
from tests.cluster.scenario import opened, run

TTL = 1.5


def test_of_two_contenders_for_each_partition_exactly_one_wins(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as a_engine, opened(nats_server.url) as b_engine:
            await a_engine.ensure_streams(Layout(partitions=16, lease_ttl=TTL))
            a = PartitionLeases(await a_engine.leases(), "master-a")
            b = PartitionLeases(await b_engine.leases(), "master-b")
            for partition in range(16):
                results = await asyncio.gather(a.acquire(partition), b.acquire(partition))
                winners = [lease for lease in results if lease is not None]
                assert len(winners) == 1, (partition, results)
                assert await a.holder(partition) == winners[0]
                assert await b.acquire(partition) is None and await a.acquire(partition) is None

    run(scenario)


def test_the_holder_renews_and_a_stale_revision_is_fenced_off(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            await engine.ensure_streams(Layout(partitions=16, lease_ttl=TTL))
            a = PartitionLeases(await engine.leases(), "master-a")
            b = PartitionLeases(await engine.leases(), "master-b")
            first = await a.acquire(3)
            assert first is not None
            renewed = await a.renew(3, first.revision)
            assert renewed is not None and renewed.revision > first.revision
            assert await a.holder(3) == renewed
            # The revision it held before is stale now: renewing or releasing with it is refused
            # and changes nothing.
            assert await a.renew(3, first.revision) is None
            assert await a.release(3, first.revision) is False
            assert await b.renew(3, first.revision) is None
            assert await a.holder(3) == renewed
            assert await b.acquire(3) is None

    run(scenario)


@pytest.mark.slow
def test_renewing_within_the_ttl_keeps_the_lease_past_it(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            await engine.ensure_streams(Layout(partitions=16, lease_ttl=TTL))
            a = PartitionLeases(await engine.leases(), "master-a")
            b = PartitionLeases(await engine.leases(), "master-b")
            lease = await a.acquire(5)
            assert lease is not None
            until = time.monotonic() + 2.5 * TTL
            while time.monotonic() < until:
                await asyncio.sleep(TTL / 6)  # the renewal period, well within the TTL
                renewed = await a.renew(5, lease.revision)
                assert renewed is not None, "the holder lost a lease it renewed in time"
                lease = renewed
                assert await b.acquire(5) is None

    run(scenario)


@pytest.mark.slow
def test_a_lease_not_renewed_passes_to_a_successor_after_the_ttl_and_the_old_holder_is_fenced(
    nats_server: NatsServer,
) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as a_engine, opened(nats_server.url) as b_engine:
            await a_engine.ensure_streams(Layout(partitions=16, lease_ttl=TTL))
            a = PartitionLeases(await a_engine.leases(), "master-a")
            b = PartitionLeases(await b_engine.leases(), "master-b")
            held = await a.acquire(7)
            written = time.monotonic()
            assert held is not None
            successor: Lease | None = None
            deadline = written + TTL + 5
            while successor is None:  # a holder that stopped renewing (paused, partitioned, dead)
                assert time.monotonic() < deadline, f"no successor within {TTL + 5}s"
                successor = await b.acquire(7)
                if successor is None:
                    await asyncio.sleep(0.05)
            assert time.monotonic() - written >= TTL * 0.9, "the lease went before its TTL"
            assert successor.owner == "master-b" and successor.revision > held.revision
            # The old holder wakes up: its renewal and its release are refused, the successor keeps p.
            assert await a.renew(7, held.revision) is None
            assert await a.release(7, held.revision) is False
            assert await a.holder(7) == successor

    run(scenario)


def test_a_released_partition_can_be_taken_at_once(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            await engine.ensure_streams(Layout(partitions=16, lease_ttl=60))
            a = PartitionLeases(await engine.leases(), "master-a")
            b = PartitionLeases(await engine.leases(), "master-b")
            held = await a.acquire(9)
            assert held is not None
            assert await a.release(9, held.revision) is True
            assert await a.holder(9) is None
            taken = await b.acquire(9)
            assert taken is not None and taken.owner == "master-b"
            assert await a.release(9, held.revision) is False
            assert await b.holder(9) == taken

    run(scenario)
