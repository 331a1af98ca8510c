"""Property-based fuzzing of every decoder that reads outside input: one error type, never a crash."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactord.actions.kinds import KINDS
from reactord.protocol import codec, framing
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError
from reactord.reactor.conditions import Counter
from reactord.reactor.offline import EventFileError, event_from_json
from reactord.reactor.rules import RuleError, load_rules_text

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FAST
@given(st.binary(max_size=512))
def test_any_bytes_decode_to_a_message_or_one_decode_error(data: bytes) -> None:
    try:
        message = m.decode(data)
    except DecodeError:
        return
    assert m.decode(message.to_wire()) == message


@FAST
@given(st.sampled_from(sorted(m.KINDS)), st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_well_framed_messages_with_any_body_are_checked_field_by_field(
    kind: str, body: dict[str, Any]
) -> None:
    try:
        message = m.decode(codec.pack([kind, body]))
    except DecodeError:
        return
    assert type(message) is m.KINDS[kind]


@FAST
@given(values)
def test_command_bodies_from_any_value(value: Any) -> None:
    try:
        m.CommandBody.unpack(codec.pack(value))
    except DecodeError:
        pass


@FAST
@given(st.lists(values, max_size=5), st.text(max_size=10), st.integers(-5, 5))
def test_event_batches_from_any_events(events: list[Any], epoch: str, base: int) -> None:
    try:
        batch = m.decode(codec.pack(["events", {"epoch": epoch, "base": base, "events": events}]))
    except DecodeError:
        return
    assert isinstance(batch, m.EventBatch)
    for event in batch.events:
        assert type(event[0]) is int and isinstance(event[1], str) and isinstance(event[3], dict)


@FAST
@given(st.binary(max_size=256))
def test_control_socket_frames_from_any_bytes(data: bytes) -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            await framing.read_frame(reader)
        except DecodeError:
            pass

    asyncio.run(read())
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)
        try:
            framing.recv_frame(right)
        except (DecodeError, ConnectionError):
            pass


@FAST
@given(values)
def test_json_event_files_from_any_value(value: Any) -> None:
    try:
        event_from_json(value, "event", 0.0)
    except EventFileError:
        pass


@FAST
@given(st.text(max_size=300))
def test_rule_files_from_any_text(text: str) -> None:
    try:
        load_rules_text(text, "fuzz.yaml", Counter(), kinds=KINDS)
    except RuleError:
        pass


@FAST
@given(values)
def test_rule_files_from_any_structure(value: Any) -> None:
    try:
        load_rules_text(json.dumps({"rules": value}, default=str), "fuzz.yaml", Counter(), kinds=KINDS)
    except RuleError:
        pass
