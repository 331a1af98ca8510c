"""Commands and returns routed between masters (``rd.cmd.<member>``, ``rd.ret``) are read like
anything from the network: a malformed one is counted and logged, never raised."""

from __future__ import annotations

import logging

import pytest

from reactord.base.stats import Stats
from reactord.cluster.node import ClusterNode
from reactord.protocol import codec
from reactord.protocol import messages as m


def _node() -> ClusterNode:
    node = ClusterNode.__new__(ClusterNode)  # only what reading a routed message needs
    node.stats = Stats()
    return node


def test_a_routed_message_is_read_when_whole_and_dropped_and_counted_when_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = _node()
    ack = m.ReturnAck(jid="01M8VJ3B8A5ZRFP6Q64GV35RTR")
    assert node._routed(codec.pack(["web01", ack.to_wire()]), "rd.ret") == ("web01", ack)
    bad = [
        b"\xc1",  # not msgpack
        codec.pack({"web01": 1}),
        codec.pack(["web01"]),
        codec.pack(["web01", "not bytes"]),
        codec.pack([7, ack.to_wire()]),
        codec.pack(["../etc", ack.to_wire()]),
        codec.pack(["\x1b[2Jweb01", ack.to_wire()]),
        codec.pack(["web01", codec.pack(["no_such_kind", {}])]),
    ]
    with caplog.at_level(logging.WARNING, logger="reactord.cluster"):
        assert [node._routed(data, "rd.cmd") for data in bad] == [None] * len(bad)
    assert node.stats.snapshot()["cluster.bad_messages"] == len(bad)
    assert caplog.text.count("dropped a malformed message on rd.cmd") == len(bad)
