"""The one codec and the wire messages: strict, bounded, one error type."""

from __future__ import annotations

import msgpack
import pytest

from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, SignatureError
from reactord.protocol.keys import Signer, verify_signature


def test_roundtrip_of_every_message_kind() -> None:
    samples: list[m.Message] = [
        m.Hello(id="web01", grains={"os": "Linux"}, version="0.1.0", functions=["test.ping"]),
        m.Heartbeat(time=1.5, outbox=3),
        m.Return(jid="01J", id="web01", success=False, retcode=1, ret=None, error="boom"),
        m.Welcome(status="accepted", signing_key=b"k" * 32, heartbeat=2.0, message="hi"),
        m.Pong(time=2.0),
        m.ReturnAck(jid="01J"),
        m.Command(payload=b"p", sig=b"s"),
        m.EventBatch(epoch="e1", base=3, events=[[3, "minion/a/x", 1.0, {"k": [1]}, None]]),
        m.Ack(epoch="e1", seq=3),
    ]
    assert {type(s) for s in samples} == set(m.KINDS.values())
    for sample in samples:
        assert m.decode(sample.to_wire()) == sample


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"", "invalid msgpack"),
        (codec.pack(["hello"]), "[kind, body]"),
        (codec.pack(["nope", {}]), "unknown message kind"),
        (codec.pack(["pong", {"time": 1, "extra": 2}]), "unknown fields"),
        (codec.pack(["pong", {}]), "missing field"),
        (codec.pack(["pong", {"time": "soon"}]), "has type str"),
        (codec.pack(["heartbeat", {"time": 1.0, "outbox": True}]), "has type bool"),
        (
            codec.pack(
                ["hello", {"id": "../etc", "grains": {}, "version": "1", "functions": [], "protocol": 1}]
            ),
            "not a valid minion id",
        ),
        (
            codec.pack(["welcome", {"status": "root", "signing_key": b"", "heartbeat": 1, "message": ""}]),
            "unknown status",
        ),
        (
            codec.pack(["return", {"jid": "x y", "id": "a", "success": True, "retcode": 0, "ret": 1}]),
            "bad jid",
        ),
        (codec.pack(["pong", {"time": 1}]) + b"\x00", "extra"),
        (codec.pack(["pong", {"time": 1}])[:-1], "incomplete"),
        (b"\x91" * 100_000 + b"\xc0", "invalid msgpack"),
        (msgpack.packb(["pong", {1: 2}]), "int is not allowed"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), "extension type"),
    ],
)
def test_bad_frames_raise_one_decode_error_with_the_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        m.decode(frame)


def test_pre_packed_event_batches_decode_like_ordinary_ones() -> None:
    wire = m.pack_event_batch("e1", 7, [(7, "minion/a/x", 2.5, codec.pack({"v": 1}), "cause")])
    assert m.decode(wire) == m.EventBatch(
        epoch="e1", base=7, events=[[7, "minion/a/x", 2.5, {"v": 1}, "cause"]]
    )


@pytest.mark.parametrize(
    "event",
    [
        [1, "t", 1.0, {}],
        ["1", "t", 1.0, {}, None],
        [1, 2, 1.0, {}, None],
        [1, "t", 1.0, [], None],
        [True, "t", 1.0, {}, None],
        [1, "t", 1.0, {}, 5],
    ],
)
def test_malformed_events_in_a_batch_reject_the_batch(event: list[object]) -> None:
    frame = codec.pack(["events", {"epoch": "e", "base": 1, "events": [event]}])
    with pytest.raises(DecodeError, match="an event is not"):
        m.decode(frame)


def _batch(base: object = 1, seq: object = 1, when: object = 1.0) -> bytes:
    return codec.pack(["events", {"epoch": "e", "base": base, "events": [[seq, "t", when, {}, None]]}])


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_batch(seq=1 << 63), "seq is out of range"),
        (_batch(seq=(1 << 64) - 1), "seq is out of range"),
        (_batch(seq=0), "seq is out of range"),
        (_batch(base=1 << 63), "'base' is out of range"),
        (_batch(base=0), "'base' is out of range"),
        (_batch(when=float("nan")), "time is not a time"),
        (_batch(when=float("inf")), "time is not a time"),
        (_batch(when=1e300), "time is not a time"),
        (_batch(when=-1.0), "time is not a time"),
        (_batch(when=True), "time is not a time"),
        (codec.pack(["ack", {"epoch": "e", "seq": 1 << 63}]), "'seq' is out of range"),
        (codec.pack(["ack", {"epoch": "e\x1b[31m", "seq": 1}]), "bad epoch"),
        (codec.pack(["heartbeat", {"time": float("nan"), "outbox": 0}]), "'time' is not a time"),
        (codec.pack(["heartbeat", {"time": 1.0, "outbox": -1}]), "'outbox' is out of range"),
        (codec.pack(["pong", {"time": 1e300}]), "'time' is not a time"),
        (codec.pack(["return_ack", {"jid": "x" * 100}]), "bad jid"),
        (
            codec.pack(["welcome", {"status": "pending", "signing_key": b"", "heartbeat": float("nan")}]),
            "'heartbeat' must be between",
        ),
    ],
)
def test_numbers_and_times_are_checked_at_the_boundary(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        m.decode(frame)


def _return(**fields: object) -> bytes:
    body = {"jid": "01J", "id": "web01", "success": True, "retcode": 0, "ret": None} | fields
    return codec.pack(["return", body])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"retcode": 1 << 63}, "'retcode' is out of range"),
        ({"started": float("nan")}, "'started' is not a time"),
        ({"finished": 1e300}, "'finished' is not a time"),
    ],
)
def test_a_return_carries_only_numbers_the_database_can_hold(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        m.decode(_return(**fields))
    assert m.decode(_return(retcode=(1 << 63) - 1)).retcode == (1 << 63) - 1  # type: ignore[attr-defined]


def test_a_hello_whose_grains_nest_too_deep_is_refused_before_anything_walks_them() -> None:
    grains: dict[str, object] = {}
    node = grains
    for _ in range(1000):
        node["g"] = {}
        node = node["g"]  # type: ignore[assignment]
    frame = codec.pack(["hello", {"id": "web01", "grains": grains, "version": "1", "functions": []}])
    with pytest.raises(DecodeError, match="'grains' nests deeper than 64"):
        m.decode(frame)
    many = codec.pack(["hello", {"id": "web01", "grains": {}, "version": "1", "functions": ["a.b"] * 10_001}])
    with pytest.raises(DecodeError, match="functions must be a list of at most"):
        m.decode(many)


def test_oversized_frames_are_refused_before_decoding() -> None:
    frame = m.Pong(time=1.0).to_wire()
    with pytest.raises(DecodeError, match="exceeds the limit"):
        m.decode(frame, max_size=len(frame) - 1)


def test_command_body_strict_and_signed() -> None:
    body = m.CommandBody(
        jid="01JABC",
        id="web01",
        fun="test.ping",
        args=[],
        kwargs={},
        timeout=5.0,
        expires=10.0,
        nonce=b"n" * 16,
    )
    payload = body.pack()
    assert m.CommandBody.unpack(payload) == body
    signer = Signer.__new__(Signer)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    Signer.__init__(signer, Ed25519PrivateKey.generate())
    sig = signer.sign(payload)
    verify_signature(signer.public, sig, payload)
    with pytest.raises(SignatureError):
        verify_signature(signer.public, sig, payload.replace(b"test.ping", b"test.pong"))
    with pytest.raises(DecodeError, match="bad function name"):
        m.CommandBody.unpack(codec.pack({**_plain(body), "fun": "os.system;rm"}))


def _plain(body: m.CommandBody) -> dict[str, object]:
    return codec.unpack(body.pack())  # type: ignore[no-any-return]


def test_event_data_depth_is_bounded_on_the_wire() -> None:
    from reactord.protocol.events import MAX_DATA_DEPTH, data_depth_ok

    def nested(levels: int) -> dict[str, object]:
        data: object = 1
        for _ in range(levels - 1):
            data = [data]
        return {"a": data} if levels > 1 else {"a": 1}

    assert data_depth_ok({}) and data_depth_ok({"a": 1, "b": "x"})
    assert data_depth_ok(nested(MAX_DATA_DEPTH)) and not data_depth_ok(nested(MAX_DATA_DEPTH + 1))
    assert not data_depth_ok({"a": [{"b": (1,)}]}, limit=3) and data_depth_ok({"a": [{"b": 1}]}, limit=3)

    ok = m.pack_event_batch("ep", 1, [(1, "t", 1.0, codec.pack(nested(MAX_DATA_DEPTH)), None)])
    assert isinstance(m.decode(ok), m.EventBatch)
    # A peer that skips the minion's own check: the whole batch is refused, with the reason.
    deep = m.pack_event_batch("ep", 1, [(1, "t", 1.0, codec.pack(nested(MAX_DATA_DEPTH + 1)), None)])
    with pytest.raises(DecodeError, match="deeper than 64 levels"):
        m.decode(deep)
