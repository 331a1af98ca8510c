"""The adapter against a real nats-server: it connects, checks the engine, makes or checks
the event stream and the lease bucket, and refuses what it cannot use in one line."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest

from reactord.base.errors import ClusterError
from reactord.cluster.engine import Layout, connect, transient
from reactord.cluster.subjects import event_subject
from tests.cluster import natsserver
from tests.cluster.natsserver import NatsServer
from tests.cluster.scenario import one_line, opened, run
from tests.support import free_ports


def test_a_recent_engine_with_jetstream_passes_the_check(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            info = await engine.check_engine()
            assert info.version == nats_server.monitor("varz")["version"]
            assert info.address == f"127.0.0.1:{nats_server.port}"

    run(scenario)


def test_an_unreachable_engine_is_refused_within_the_timeout() -> None:
    (port,) = free_ports(1)

    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(ClusterError) as caught:
            await connect([f"nats://127.0.0.1:{port}"], timeout=1)
        assert time.monotonic() - started < 3
        assert one_line(caught).startswith(f"cannot reach the cluster's engine at nats://127.0.0.1:{port}")

    run(scenario)


def test_an_engine_without_jetstream_is_refused(nats_binary: Path, tmp_path: Path) -> None:
    server = natsserver.single(nats_binary, tmp_path, jetstream=False)
    server.start()

    async def scenario() -> None:
        async with opened(server.url) as engine:
            with pytest.raises(ClusterError) as caught:
                await engine.check_engine()
            assert "has no JetStream" in one_line(caught)

    try:
        run(scenario)
    finally:
        assert server.stop() == 0


def test_an_engine_older_than_2_11_is_refused() -> None:
    """A stand-in server that greets like nats-server 2.10 (the NATS protocol's INFO line) and
    answers PING: the check refuses it before asking anything of JetStream."""
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "OLD", "version": "2.10.24", "proto": 1, "headers": True, "max_payload": 1 << 20}
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        while line := await reader.readline():
            requests.append(line)
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
            await writer.drain()
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with opened(f"nats://127.0.0.1:{port}", timeout=2) as engine:
                with pytest.raises(ClusterError) as caught:
                    await engine.check_engine()
        finally:
            server.close()
        assert one_line(caught) == (
            "the cluster's engine is nats-server 2.10.24; cluster mode needs 2.11 or newer"
        )
        assert not any(b"$JS.API" in r for r in requests)

    run(scenario)


def test_a_token_opens_the_engine_and_a_wrong_one_is_refused(nats_binary: Path, tmp_path: Path) -> None:
    server = natsserver.single(nats_binary, tmp_path, token="s3cret")
    server.start()

    async def scenario() -> None:
        with pytest.raises(ClusterError) as caught:
            await connect([server.url], token="wrong", timeout=5)  # it ends at the refusal
        line = one_line(caught)
        # nats-server sends -ERR 'Authorization Violation' and closes: the client reads the
        # error, or (a race between the two) meets the reset first; a refusal either way
        assert "refused this master" in line, line
        assert "Authorization Violation" in line or "Connection reset" in line, line
        async with opened(server.url, token="s3cret") as engine:
            await engine.check_engine()

    try:
        run(scenario)
    finally:
        assert server.stop() == 0


def test_a_credentials_file_that_is_missing_or_cannot_be_used_is_refused_in_one_line(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        with pytest.raises(ClusterError) as caught:
            await connect([nats_server.url], credentials=tmp_path / "none.creds", timeout=1)
        assert one_line(caught).endswith("none.creds is not a readable file")
        if importlib.util.find_spec("nkeys") is None:
            creds = tmp_path / "user.creds"
            creds.write_text("-----BEGIN NATS USER JWT-----\n")
            with pytest.raises(ClusterError) as caught:
                await connect([nats_server.url], credentials=creds, timeout=1)
            assert one_line(caught).startswith("a credentials file needs the nkeys package")

    run(scenario)


def test_the_stream_and_bucket_are_made_once_then_checked(nats_server: NatsServer) -> None:
    layout = Layout(partitions=8, lease_ttl=2, duplicate_window=30)

    async def scenario() -> None:
        async with opened(nats_server.url) as first, opened(nats_server.url) as second:
            await first.ensure_streams(layout)
            await second.ensure_streams(layout)  # a second master finds them as it wants them
            assert await first.stored() == 0
        streams = {
            s["name"]: s
            for s in nats_server.monitor("jsz?streams=true&config=true")["account_details"][0][
                "stream_detail"
            ]
        }
        events = streams["RDEV"]["config"]
        assert events["subjects"] == ["rd.ev.>"]
        assert events["metadata"]["reactord.partitions"] == "8"
        assert events["duplicate_window"] == 30 * 10**9
        assert streams["KV_rd_leases"]["config"]["max_age"] == 2 * 10**9

    run(scenario)


def test_a_master_set_for_another_partition_count_or_lease_ttl_is_refused(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            await engine.ensure_streams(Layout(partitions=64, lease_ttl=10))
            with pytest.raises(ClusterError) as caught:
                await engine.ensure_streams(Layout(partitions=32, lease_ttl=10))
            assert one_line(caught) == (
                "the stream RDEV was created with 64 partitions, this master is set for 32:"
                " the count is fixed at creation (set partitions: 64)"
            )
            with pytest.raises(ClusterError) as caught:
                await engine.ensure_streams(Layout(partitions=64, lease_ttl=5))
            assert "the bucket rd_leases keeps leases 10s, this master's lease TTL is 5s" in one_line(caught)

    run(scenario)


def test_a_stream_rdev_not_made_by_reactord_is_refused(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        client = await nats.connect(nats_server.url)
        await client.jetstream().add_stream(name="RDEV", subjects=["rd.ev.>"])
        await client.close()
        async with opened(nats_server.url) as engine:
            with pytest.raises(ClusterError) as caught:
                await engine.ensure_streams(Layout(partitions=64, lease_ttl=10))
            assert "was not made by reactord" in one_line(caught)

    run(scenario)


def test_an_event_published_twice_with_one_id_is_stored_once(nats_server: NatsServer) -> None:
    async def scenario() -> None:
        async with opened(nats_server.url) as engine:
            await engine.ensure_streams(Layout(partitions=8, lease_ttl=2))
            subject = event_subject("web01.example.com", 8)
            first = await engine.publish(subject, b"one", "web01:1:1")
            again = await engine.publish(subject, b"one", "web01:1:1")
            other = await engine.publish(subject, b"two", "web01:1:2")
            assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
            assert again.seq == first.seq and other.seq == first.seq + 1
            assert await engine.stored() == 2
            stored = await engine.read(first.seq)
            assert (stored.subject, stored.data, stored.msg_id) == (subject, b"one", "web01:1:1")

    run(scenario)


def test_a_lost_engine_is_a_cluster_error_not_a_hang(nats_binary: Path, tmp_path: Path) -> None:
    server = natsserver.single(nats_binary, tmp_path)
    server.start()

    async def scenario() -> None:
        async with opened(server.url, timeout=1) as engine:
            await engine.ensure_streams(Layout(partitions=8, lease_ttl=2))
            server.kill()
            with pytest.raises(ClusterError) as caught:
                await engine.publish(event_subject("web01", 8), b"x", "web01:1:1")
            assert one_line(caught).startswith("the engine did not store rd.ev.")

    try:
        run(scenario)
    finally:
        server.stop()


def test_only_refusals_that_time_lifts_are_waited_out() -> None:
    """The master's start waits out a cluster still forming (a peer not heard from yet: "no
    suitable peers for placement, peer offline"; a meta leader being elected) and a silent
    engine, and gives up at once on the rest: too few servers for the replicas asked, a
    stream made by someone else. The descriptions are the engine's own."""

    def refused(code: int, err_code: int, description: str) -> ClusterError:
        try:
            raise ClusterError("cannot create the bucket rd_presence") from nats.js.errors.APIError(
                code=code, err_code=err_code, description=description
            )
        except ClusterError as exc:
            return exc

    def timed_out() -> ClusterError:
        try:
            raise ClusterError("cannot read the stream RDEV") from nats.errors.TimeoutError()
        except ClusterError as exc:
            return exc

    assert transient(refused(400, 10005, "no suitable peers for placement, peer offline"))
    assert transient(refused(503, 10008, "JetStream system temporarily unavailable"))
    assert transient(timed_out())
    assert not transient(refused(400, 10005, "no suitable peers for placement"))
    assert not transient(refused(400, 10058, "stream name already in use with a different configuration"))
    assert not transient(refused(400, 10074, "replicas > 1 not supported in non-clustered mode"))
