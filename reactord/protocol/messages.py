"""Wire messages: frozen values, each with one ``to_wire()`` / ``from_wire()`` pair.

Every frame is one msgpack array ``[kind, body]`` where ``body`` is a map with exactly the
fields of that kind (docs/protocol.md shows each). Example, a heartbeat::

    ["heartbeat", {"time": 1764162000.25, "outbox": 0}]

``decode`` turns bytes into a message or raises ``DecodeError``; it never returns a partly
checked value. Every number is checked here, at the boundary: integers fit a signed 64-bit
column, times are finite and between the epoch and the year 3000, durations are finite and
in range, maps and lists nest at most ``MAX_DATA_DEPTH`` levels. A value that decodes but
would break the database, a log line or the CLI never gets past this module.

Commands are the one signed message: ``Command.payload`` is the packed ``CommandBody`` and
``Command.sig`` the master's Ed25519 signature of exactly those bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from reactord.protocol import codec
from reactord.protocol.errors import DecodeError
from reactord.protocol.events import INT64_MAX, MAX_DATA_DEPTH, data_depth_ok, valid_time
from reactord.protocol.fields import Body, fail

PROTOCOL_VERSION = 1
_FUNCTION = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
KEY_STATUSES = ("accepted", "pending", "rejected", "denied")
#: Functions a hello may list; a job's timeout at most (a week).
MAX_FUNCTIONS = 10_000
MAX_JOB_SECONDS = 7 * 86400.0

M = TypeVar("M", bound="Message")


class Message:
    """Base of every wire message."""

    kind: ClassVar[str] = ""

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def read(cls: type[M], body: Body) -> M:
        raise NotImplementedError

    def to_wire(self) -> bytes:
        return codec.pack([self.kind, self.body()])

    @classmethod
    def from_wire(cls: type[M], data: bytes, *, max_size: int = codec.MAX_FRAME) -> M:
        message = decode(data, max_size=max_size)
        if not isinstance(message, cls):
            raise DecodeError(f"expected a {cls.kind!r} message, got {message.kind!r}")
        return message


def decode(data: bytes, *, max_size: int = codec.MAX_FRAME) -> Message:
    """Decode one frame into the message it holds, or raise ``DecodeError``."""
    value = codec.unpack(data, max_size=max_size)
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str):
        raise DecodeError("a frame must be [kind, body]")
    kind, raw = value
    cls = KINDS.get(kind)
    if cls is None:
        raise DecodeError(f"unknown message kind {kind[:40]!r}")
    reader = Body(kind, raw)
    message = cls.read(reader)
    reader.done()
    return message


# -- command channel, minion -> master ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """A minion introduces itself; the only message read from a key that is not accepted."""

    kind: ClassVar[str] = "hello"
    id: str
    grains: dict[str, Any]
    version: str
    functions: list[str] = field(default_factory=list)
    protocol: int = PROTOCOL_VERSION

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "grains": self.grains,
            "version": self.version,
            "functions": self.functions,
            "protocol": self.protocol,
        }

    @classmethod
    def read(cls, body: Body) -> Hello:
        functions = body.get("functions", list)
        if len(functions) > MAX_FUNCTIONS or not all(isinstance(f, str) and len(f) <= 128 for f in functions):
            raise fail(cls.kind, f"functions must be a list of at most {MAX_FUNCTIONS} names")
        return cls(
            id=body.minion_id(),
            grains=body.nested("grains", dict),
            version=body.get("version", str)[:64],
            functions=functions,
            protocol=body.int64("protocol"),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Sent by an accepted minion every heartbeat interval; answered with ``pong``."""

    kind: ClassVar[str] = "heartbeat"
    time: float
    outbox: int = 0

    def body(self) -> dict[str, Any]:
        return {"time": self.time, "outbox": self.outbox}

    @classmethod
    def read(cls, body: Body) -> Heartbeat:
        return cls(time=body.time("time"), outbox=body.int64("outbox", 0, 0))


@dataclass(frozen=True, slots=True)
class Return(Message):
    """The outcome of one job on one minion; re-sent until the master acknowledges it."""

    kind: ClassVar[str] = "return"
    jid: str
    id: str
    success: bool
    retcode: int
    ret: Any
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def body(self) -> dict[str, Any]:
        return {
            "jid": self.jid,
            "id": self.id,
            "success": self.success,
            "retcode": self.retcode,
            "ret": self.ret,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }

    @classmethod
    def read(cls, body: Body) -> Return:
        jid = body.get("jid", str)
        if not _TOKEN.fullmatch(jid):
            raise fail(cls.kind, "bad jid")
        body.seen.add("ret")
        if not data_depth_ok([body.body.get("ret")], MAX_DATA_DEPTH - 1):
            raise fail(cls.kind, f"the ret nests deeper than {MAX_DATA_DEPTH - 1} levels")
        return cls(
            jid=jid,
            id=body.minion_id(),
            success=body.get("success", bool),
            retcode=body.int64("retcode"),
            ret=body.body.get("ret"),
            error=body.get("error", (str, type(None)), None),
            started=body.time("started", 0.0),
            finished=body.time("finished", 0.0),
        )


# -- command channel, master -> minion ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """The master's answer to ``hello``: the key's status and what the minion must pin."""

    kind: ClassVar[str] = "welcome"
    status: str
    signing_key: bytes = b""
    heartbeat: float = 5.0
    message: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "signing_key": self.signing_key,
            "heartbeat": self.heartbeat,
            "message": self.message,
        }

    @classmethod
    def read(cls, body: Body) -> Welcome:
        status = body.get("status", str)
        if status not in KEY_STATUSES:
            raise fail(cls.kind, f"unknown status {status[:20]!r}")
        signing_key = body.get("signing_key", bytes)
        if status == "accepted" and len(signing_key) != 32:
            raise fail(cls.kind, "an accepted welcome carries a 32-byte signing key")
        return cls(
            status=status,
            signing_key=signing_key,
            heartbeat=body.seconds("heartbeat", 0.01, 86400.0),
            message=body.get("message", str, "")[:512],
        )


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """The master's answer to a heartbeat."""

    kind: ClassVar[str] = "pong"
    time: float

    def body(self) -> dict[str, Any]:
        return {"time": self.time}

    @classmethod
    def read(cls, body: Body) -> Pong:
        return cls(time=body.time("time"))


@dataclass(frozen=True, slots=True)
class ReturnAck(Message):
    """The master stored the return of ``jid``; the minion stops re-sending it."""

    kind: ClassVar[str] = "return_ack"
    jid: str

    def body(self) -> dict[str, Any]:
        return {"jid": self.jid}

    @classmethod
    def read(cls, body: Body) -> ReturnAck:
        jid = body.get("jid", str)
        if not _TOKEN.fullmatch(jid):
            raise fail(cls.kind, "bad jid")
        return cls(jid=jid)


@dataclass(frozen=True, slots=True)
class CommandBody:
    """What the master signs: one job for one minion, valid until ``expires``."""

    jid: str
    id: str
    fun: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout: float
    expires: float
    nonce: bytes

    def pack(self) -> bytes:
        return codec.pack(
            {
                "jid": self.jid,
                "id": self.id,
                "fun": self.fun,
                "args": self.args,
                "kwargs": self.kwargs,
                "timeout": self.timeout,
                "expires": self.expires,
                "nonce": self.nonce,
            }
        )

    @classmethod
    def unpack(cls, payload: bytes) -> CommandBody:
        body = Body("command", codec.unpack(payload))
        jid = body.get("jid", str)
        if not _TOKEN.fullmatch(jid):
            raise fail("command", "bad jid")
        fun = body.get("fun", str)
        if not _FUNCTION.fullmatch(fun):
            raise fail("command", f"bad function name {fun[:64]!r}")
        result = cls(
            jid=jid,
            id=body.minion_id(),
            fun=fun,
            args=body.nested("args", list, MAX_DATA_DEPTH - 1),
            kwargs=body.nested("kwargs", dict, MAX_DATA_DEPTH - 1),
            timeout=body.seconds("timeout", 0.0, MAX_JOB_SECONDS),
            expires=body.time("expires"),
            nonce=body.get("nonce", bytes),
        )
        body.done()
        return result


@dataclass(frozen=True, slots=True)
class Command(Message):
    """A signed job for one minion (see ``CommandBody``)."""

    kind: ClassVar[str] = "command"
    payload: bytes
    sig: bytes

    def body(self) -> dict[str, Any]:
        return {"payload": self.payload, "sig": self.sig}

    @classmethod
    def read(cls, body: Body) -> Command:
        return cls(payload=body.get("payload", bytes), sig=body.get("sig", bytes))


#: Every message kind that may appear on the wire, by name.
KINDS: dict[str, type[Message]] = {
    cls.kind: cls for cls in (Hello, Heartbeat, Return, Welcome, Pong, ReturnAck, Command)
}


def valid_function_name(name: str) -> bool:
    return _FUNCTION.fullmatch(name) is not None


# -- the event path (minion PUB -> master SUB) and its acknowledgement ------------------------

#: One event in a batch: ``[seq, tag, time, data, causation]``.
WireEvent = list[Any]


@dataclass(frozen=True, slots=True)
class EventBatch(Message):
    """Events from a minion's outbox, oldest first, with consecutive ``seq`` numbers.

    ``epoch`` names the outbox (new when it is created); ``base`` is the lowest seq it
    still holds, so a master that has no record of this epoch knows where it starts, and
    one that is behind learns what the outbox dropped. Example::

        ["events", {"epoch": "9f2c...", "base": 41,
                    "events": [[41, "minion/web01/beacon/load", 1764162000.1, {"load1": 0.4}, null]]}]
    """

    kind: ClassVar[str] = "events"
    epoch: str
    base: int
    events: list[WireEvent]

    def body(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "base": self.base, "events": self.events}

    @classmethod
    def read(cls, body: Body) -> EventBatch:
        epoch = body.get("epoch", str)
        if not _TOKEN.fullmatch(epoch):
            raise fail(cls.kind, "bad epoch")
        events = body.get("events", list)
        for event in events:
            if (
                not isinstance(event, list)
                or len(event) != 5
                or type(event[0]) is not int
                or not isinstance(event[1], str)
                or not isinstance(event[3], dict)
                or not (event[4] is None or isinstance(event[4], str))
            ):
                raise fail(cls.kind, "an event is not [seq, tag, time, data, causation]")
            if not 1 <= event[0] <= INT64_MAX:
                raise fail(cls.kind, "an event's seq is out of range")
            if not valid_time(event[2]):
                raise fail(cls.kind, "an event's time is not a time between 1970 and 3000")
            if not data_depth_ok(event[3]):
                raise fail(cls.kind, f"an event's data nest deeper than {MAX_DATA_DEPTH} levels")
        return cls(epoch=epoch, base=body.int64("base", 1), events=events)


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The master stored every event of ``epoch`` up to ``seq`` (cumulative)."""

    kind: ClassVar[str] = "ack"
    epoch: str
    seq: int

    def body(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq}

    @classmethod
    def read(cls, body: Body) -> Ack:
        epoch = body.get("epoch", str)
        if not _TOKEN.fullmatch(epoch):
            raise fail(cls.kind, "bad epoch")
        return cls(epoch=epoch, seq=body.int64("seq", 0))


KINDS.update({cls.kind: cls for cls in (EventBatch, Ack)})


def pack_event_batch(epoch: str, base: int, events: list[tuple[int, str, float, bytes, str | None]]) -> bytes:
    """The wire form of an ``EventBatch`` whose event data are already msgpack maps.

    A minion keeps each event's data packed in its outbox; this writes them into the frame
    as they are instead of unpacking and packing them again. ``decode`` reads the result as
    an ordinary ``EventBatch``.
    """
    packer = codec.packer()
    parts = [
        packer.pack_array_header(2),
        packer.pack("events"),
        packer.pack_map_header(3),
        packer.pack("epoch"),
        packer.pack(epoch),
        packer.pack("base"),
        packer.pack(base),
        packer.pack("events"),
        packer.pack_array_header(len(events)),
    ]
    for seq, tag, time, data, causation in events:
        parts.append(packer.pack_array_header(5))
        parts.append(packer.pack(seq))
        parts.append(packer.pack(tag))
        parts.append(packer.pack(time))
        parts.append(data)
        parts.append(packer.pack(causation))
    return b"".join(parts)
