"""Partitions without an engine: where a source's events go, and which member should own each
partition (rendezvous), the same answer in every process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from reactord.base.errors import ClusterError
from reactord.cluster.engine import Layout
from reactord.cluster.leases import assignment, rendezvous
from reactord.cluster.subjects import event_subject, partition_of, source_token

SOURCES = ["web01", "web01.example.com", "db-1", "a..b", "x.", "café", "p%41", "pA", "w*", "w>", "a b"]
#: One NATS subject token: no dot, no wildcard, no whitespace.
TOKEN = re.compile(r"[^.*>\s]+")


def test_a_source_is_one_subject_token_and_no_two_sources_share_one() -> None:
    tokens = [source_token(s) for s in SOURCES]
    assert all(TOKEN.fullmatch(t) for t in tokens), tokens
    assert len(set(tokens)) == len(SOURCES)
    assert source_token("web01.example.com") == "web01%2Eexample%2Ecom"
    assert source_token("db-1_a") == "db-1_a"


def test_an_event_subject_names_the_partition_of_its_source() -> None:
    for source in SOURCES:
        subject = event_subject(source, 64)
        assert subject == f"rd.ev.{partition_of(source, 64)}.{source_token(source)}"
        assert subject.count(".") == 3


def test_sources_spread_over_every_partition() -> None:
    seen = {partition_of(f"minion{i}", 16) for i in range(400)}
    assert seen == set(range(16))


def test_nonsense_is_refused_in_one_line() -> None:
    with pytest.raises(ClusterError, match="cannot be empty"):
        source_token("")
    with pytest.raises(ClusterError, match="at least 1"):
        partition_of("web01", 0)
    with pytest.raises(ClusterError, match="no live member to own partition 3"):
        rendezvous(3, [])
    with pytest.raises(ClusterError, match=r"dedupe window \(10s\) must exceed the lease TTL \(10s\)"):
        Layout(partitions=64, lease_ttl=10, duplicate_window=10)
    with pytest.raises(ClusterError, match="partitions must be between"):
        Layout(partitions=0, lease_ttl=10)


def _assignment_elsewhere(partitions: int, members: list[str]) -> dict[int, str]:
    """The assignment computed by another interpreter, with another hash seed."""
    code = (
        "import json, sys; from reactord.cluster.leases import assignment; "
        f"print(json.dumps(assignment({partitions}, {members!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    return {int(k): v for k, v in json.loads(out).items()}


def test_rendezvous_gives_every_process_the_same_owners_whatever_the_order() -> None:
    members = ["master-a", "master-b", "master-c"]
    here = assignment(64, members)
    assert here == assignment(64, list(reversed(members)))
    assert here == _assignment_elsewhere(64, members)
    counts = {m: sum(1 for owner in here.values() if owner == m) for m in members}
    assert all(10 <= n <= 35 for n in counts.values()), counts


def test_when_a_member_leaves_only_its_partitions_move() -> None:
    before = assignment(64, ["master-a", "master-b", "master-c"])
    after = assignment(64, ["master-a", "master-b"])
    moved = {p for p in range(64) if before[p] != after[p]}
    assert moved == {p for p in range(64) if before[p] == "master-c"}
    assert moved and set(after.values()) == {"master-a", "master-b"}


def test_when_a_member_joins_it_takes_partitions_from_the_others_and_nothing_else_moves() -> None:
    before = assignment(64, ["master-a", "master-b"])
    after = assignment(64, ["master-a", "master-b", "master-c"])
    moved = {p for p in range(64) if before[p] != after[p]}
    assert moved == {p for p in range(64) if after[p] == "master-c"}
    assert moved
