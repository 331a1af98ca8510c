"""The event envelope (CloudEvents-shaped), as the master logs, republishes and matches it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reactord.protocol import codec
from reactord.protocol.errors import EncodeError

#: How deep event data may nest (the data map itself is level 1). Far past any real payload,
#: and far below msgpack's own limit of about a thousand, which an event must stay under
#: once it is wrapped in a batch, a bus frame or a control answer.
MAX_DATA_DEPTH = 64
#: Integers a message field may carry: what SQLite stores (signed 64-bit).
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Times a message may carry (seconds since 1970): from the epoch to the year 3000. Beyond
#: that no clock is right, and the CLI, the database and the bus must never meet such a value.
MAX_TIME = 32503680000.0
_CONTAINERS = (dict, list, tuple)
_TIME_TYPES = (int, float)
_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})


def data_depth_ok(data: Any, limit: int = MAX_DATA_DEPTH) -> bool:
    """Whether ``data`` nests at most ``limit`` levels (maps and lists count; scalars do not)."""
    for child in data.values() if isinstance(data, dict) else data:
        if type(child) not in _SCALARS and isinstance(child, _CONTAINERS):
            break
    else:
        return True  # the usual event: a flat map, decided without building a stack
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, _CONTAINERS):
                if depth >= limit:
                    return False
                stack.append((child, depth + 1))
    return True


def valid_time(value: object) -> bool:
    """Whether ``value`` is a time a message may carry: a finite number within the epoch..year 3000.

    (NaN and the infinities fail the comparison itself; bool is not an exact int or float.)"""
    return type(value) in _TIME_TYPES and 0 <= value <= MAX_TIME  # type: ignore[operator]


def check_data(data: dict[str, Any]) -> bytes:
    """``data`` packed for the wire, or ``EncodeError`` when no event may carry it."""
    if not data_depth_ok(data):
        raise EncodeError(f"event data nest deeper than {MAX_DATA_DEPTH} levels")
    return codec.pack(data)


@dataclass(frozen=True, slots=True)
class Event:
    """One accepted event.

    ``source`` is set by the master from the authenticated connection (a minion id, or
    ``master``, ``cli``, ``webhook/<name>``), never taken from a payload. ``(source, epoch,
    seq)`` is the delivery and dedupe key; ``causation`` is the id of what caused it and
    ``depth`` how many ``fire`` actions lie between it and an outside event (the loop guard).
    """

    id: str
    tag: str
    source: str
    time: float
    data: dict[str, Any]
    seq: int = 0
    epoch: str = ""
    causation: str | None = None
    depth: int = 0
    received: float = 0.0
    replayed: bool = False
    #: The action whose ``fire`` made this event (master-internal; None for all others).
    action: str | None = None
    #: ``data`` packed once, on the hot path, for the log, the state table and the bus.
    packed: bytes | None = field(default=None, compare=False, repr=False)
    #: What a rule over several events matched, by name (its actions' ``events.<name>``):
    #: set on the copy of the event a firing carries, never stored with the event.
    matched: Mapping[str, Event] | None = field(default=None, compare=False, repr=False)

    def packed_data(self) -> bytes:
        return self.packed if self.packed is not None else codec.pack(self.data)

    def _envelope(self) -> dict[str, Any]:
        """Every field but the data (and ``received``); the optional ones only when set."""
        out: dict[str, Any] = {
            "id": self.id,
            "tag": self.tag,
            "source": self.source,
            "time": self.time,
            "seq": self.seq,
            "epoch": self.epoch,
        }
        if self.causation:
            out["causation"] = self.causation
        if self.depth:
            out["depth"] = self.depth
        if self.replayed:
            out["replayed"] = True
        if self.action:
            out["action"] = self.action
        return out

    def public(self) -> dict[str, Any]:
        """The envelope as ``event watch --json`` and the CLI show it."""
        out = self._envelope()
        out["data"] = self.data
        return out

    def to_bus(self) -> bytes:
        """The frame republished on the master's local bus: ``["event", {...}]``.

        The same map as ``public()`` plus ``received``, assembled around the packed data.
        """
        head = self._envelope()
        head["received"] = self.received
        packer = codec.packer()
        parts = [packer.pack_array_header(2), packer.pack("event"), packer.pack_map_header(len(head) + 1)]
        for key, value in head.items():
            parts.append(packer.pack(key))
            parts.append(packer.pack(value))
        parts += [packer.pack("data"), self.packed_data()]
        return b"".join(parts)
