"""Three nats-servers clustered, the event stream replicated three times (R3): the engine
dedupes, and losing any one node (even the stream's leader) loses neither writes nor reads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reactord.base.errors import ClusterError
from reactord.cluster.engine import Engine, Layout, Published
from reactord.cluster.subjects import event_subject
from tests.cluster.natsserver import NatsServer
from tests.cluster.scenario import opened, run
from tests.support import wait_until

LAYOUT = Layout(partitions=8, lease_ttl=2, replicas=3)


def stream_on(server: NatsServer, name: str = "RDEV") -> dict[str, Any] | None:
    """The stream as ``server`` holds it (its replica), None if it holds none."""
    for account in server.monitor("jsz?streams=true&config=true").get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == name:
                return stream  # type: ignore[no-any-return]
    return None


async def publish_until_stored(engine: Engine, source: str, seq: int, timeout: float = 30) -> Published:
    """Publish event ``seq`` of ``source`` until the engine acknowledges it (an election after a
    lost node refuses writes for a moment); a retry whose first try was stored is deduped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await engine.publish(
                event_subject(source, LAYOUT.partitions), b"%d" % seq, f"{source}:1:{seq}"
            )
        except ClusterError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.slow
def test_r3_stream_dedupes_and_survives_the_loss_and_return_of_a_node(nats_cluster: list[NatsServer]) -> None:
    urls = [s.url for s in nats_cluster]

    async def scenario() -> None:
        async with opened(*urls, timeout=2) as engine:
            await engine.check_engine()
            await engine.ensure_streams(LAYOUT)
            replicas = [stream_on(s) for s in nats_cluster]
            assert all(r is not None and r["config"]["num_replicas"] == 3 for r in replicas), replicas

            first = await publish_until_stored(engine, "web01", 1)
            again = await publish_until_stored(engine, "web01", 1)
            assert not first.duplicate and again.duplicate and again.seq == first.seq
            assert await engine.stored() == 1

            # SIGKILL the node leading the stream: the other two elect a leader and go on.
            leader_name = replicas[0]["cluster"]["leader"]  # type: ignore[index]
            leader = next(s for s in nats_cluster if s.name == leader_name)
            leader.kill()
            for seq in range(2, 12):
                await publish_until_stored(engine, "web01", seq)
            assert (await publish_until_stored(engine, "web01", 5)).duplicate
            assert await engine.stored() == 11
            assert [(await engine.read(n)).data for n in range(1, 12)] == [b"%d" % n for n in range(1, 12)]

            # The node comes back, catches up, and holds a full replica: with another node
            # killed, it and the third still serve every event and take new ones.
            leader.start()
            wait_until(lambda: leader.routed(nats_cluster), 20, f"{leader.name} routed again")
            wait_until(
                lambda: ((stream_on(leader) or {}).get("state") or {}).get("messages") == 11,
                30,
                f"{leader.name} to catch up on RDEV",
            )
            other = next(s for s in nats_cluster if s is not leader)
            other.kill()
            await publish_until_stored(engine, "web02", 1)
            assert await engine.stored() == 12
            assert (await engine.read(11)).data == b"11"

    run(scenario)
