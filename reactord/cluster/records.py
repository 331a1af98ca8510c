"""What cluster mode stores in the event stream: records, packed with msgpack.

A record is a list whose first item says its kind:

- ``["E", [event, ...], tracked]``: events, each ``[id, tag, source, time, data, seq, epoch,
  causation, depth, received, action]`` with ``data`` packed already (the bytes the log
  stores). A minion batch is one record (its events, in order, from one source, ``tracked``
  true: applied once per (source, epoch, seq), whichever master published it, however
  often); so is a group of the master's own events (``tracked`` false: they are published
  once, under a message id the engine deduplicates). A fourth item, true, marks events
  copied from a single master by ``reactord cluster import``: logged (and the fleet state
  built from them), never decided again.
- ``["R", [[kind, rule, key, value], ...]]``: rule state rows copied by ``cluster import``.
- ``["L", {dead letter}]``: a dead letter as its master wrote it (new, or retried): every
  master's ``deadletters`` lists it.
- ``["D", [[action_id, status, fields], ...]]``: actions ended (ok, dead, skipped,
  interrupted) on their partition's owner, with what was recorded of them (``fields``:
  attempts, started, finished, error, result, jid, params); every master marks them so in its own outbox, so
  the next owner does not run them again.

The engine is ours, but its bytes are read like any other: a record that does not decode
into exactly these shapes raises ``DecodeError`` and is skipped (counted), never applied.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from reactord.protocol import codec
from reactord.protocol.errors import DecodeError
from reactord.protocol.events import Event
from reactord.store.audit import DeadLetter

EVENTS = "E"
DONE = "D"
RULE_STATE = "R"
DEAD = "L"
_KINDS = frozenset({"throttle", "window", "hold"})
#: A record's largest size: the engine's default max payload.
MAX_RECORD = 8 << 20
_MAX_TEXT = 4096
#: An action's statuses once it has ended ("failed" is between two tries: not ended).
ENDED = frozenset({"ok", "dead", "skipped", "interrupted"})


@dataclass(frozen=True, slots=True)
class Done:
    ended: list[tuple[str, str, dict[str, Any]]]  # (action id, status, fields)


@dataclass(frozen=True, slots=True)
class Events:
    events: list[Event]
    tracked: bool
    imported: bool = False


@dataclass(frozen=True, slots=True)
class RuleRows:
    rows: list[tuple[str, str, str, Any]]


def pack_events(events: list[Event], tracked: bool, imported: bool = False) -> bytes:
    return codec.pack(
        [
            EVENTS,
            [
                [
                    e.id,
                    e.tag,
                    e.source,
                    e.time,
                    e.packed_data(),
                    e.seq,
                    e.epoch,
                    e.causation,
                    e.depth,
                    e.received,
                    e.action,
                ]
                for e in events
            ],
            tracked,
            *([True] if imported else []),
        ]
    )


def pack_done(ended: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    return codec.pack([DONE, [list(pair) for pair in ended]])


def pack_rule_rows(rows: list[tuple[str, str, str, Any]]) -> bytes:
    return codec.pack([RULE_STATE, [list(row) for row in rows]])


def pack_dead(letter: DeadLetter) -> bytes:
    return codec.pack([DEAD, dataclasses.asdict(letter)])


def _dead(value: Any) -> DeadLetter:
    if not isinstance(value, dict):
        raise DecodeError("a dead letter record holds a mapping")
    try:
        letter = DeadLetter(**value)
    except TypeError as exc:
        raise DecodeError(f"a dead letter record is wrong: {exc}") from exc
    for name in ("id", "action_id", "event_id", "rule", "kind", "label", "status"):
        _text(getattr(letter, name))
    _text(letter.error, empty=True, limit=MAX_RECORD)
    for name in ("timeout", "created", "updated"):
        _number(getattr(letter, name))
    _count(letter.attempts)
    if not isinstance(letter.retry, dict) or not (letter.params is None or isinstance(letter.params, dict)):
        raise DecodeError("a dead letter's retry and params are mappings")
    return letter


def unpack(payload: bytes) -> Events | Done | RuleRows | DeadLetter:
    """A record from the stream (see the module docstring); DecodeError if it is not one."""
    record = codec.unpack(payload, max_size=MAX_RECORD)
    if not isinstance(record, list) or not record:
        raise DecodeError("a cluster record is a non-empty list")
    if record[0] == DONE and len(record) == 2 and isinstance(record[1], list):
        ended = []
        for item in record[1]:
            if not isinstance(item, list) or len(item) != 3 or not isinstance(item[2], dict):
                raise DecodeError("a done record holds [action id, status, fields] items")
            action_id, status = _text(item[0]), _text(item[1])
            if status not in ENDED:
                raise DecodeError(f"an action cannot end as {status!r}")
            ended.append((action_id, status, _done_fields(item[2])))
        return Done(ended)
    if record[0] == DEAD and len(record) == 2:
        return _dead(record[1])
    if record[0] == RULE_STATE and len(record) == 2 and isinstance(record[1], list):
        rows = []
        for row in record[1]:
            if not isinstance(row, list) or len(row) != 4 or row[0] not in _KINDS:
                raise DecodeError("a rule state row is [kind, rule, key, value]")
            rows.append((row[0], _text(row[1]), _text(row[2], empty=True), row[3]))
        return RuleRows(rows)
    if record[0] != EVENTS or len(record) not in (3, 4) or not isinstance(record[1], list):
        raise DecodeError("unknown cluster record")
    return Events(
        [_event(item) for item in record[1]], record[2] is True, record[-1] is True and len(record) == 4
    )


def _done_fields(fields: dict[Any, Any]) -> dict[str, Any]:
    """An ended action's fields, as its master recorded them: known names, plain values."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in ("attempts",):
            out[name] = _count(value)
        elif name in ("started", "finished"):
            out[name] = None if value is None else _number(value)
        elif name in ("error", "jid", "params"):
            out[name] = None if value is None else _text(value, empty=True, limit=MAX_RECORD)
        elif name == "result":
            out[name] = value  # any plain value (msgpack decoded it): stored as JSON
        else:
            raise DecodeError(f"a done record names an unknown field {name!r}")
    return out


def _event(item: Any) -> Event:
    if not isinstance(item, list) or len(item) != 11:
        raise DecodeError("an event record has 11 fields")
    event_id, tag, source, when, packed, seq, epoch, causation, depth, received, action = item
    if not isinstance(packed, bytes):
        raise DecodeError("an event's data is packed bytes")
    data = codec.unpack(packed, max_size=MAX_RECORD)
    if not isinstance(data, dict):
        raise DecodeError("an event's data is a mapping")
    return Event(
        id=_text(event_id),
        tag=_text(tag),
        source=_text(source),
        time=_number(when),
        data=data,
        seq=_count(seq),
        epoch=_text(epoch, empty=True),
        causation=None if causation is None else _text(causation),
        depth=_count(depth),
        received=_number(received),
        action=None if action is None else _text(action),
        packed=packed,
    )


def _text(value: Any, *, empty: bool = False, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        raise DecodeError("a text field of a cluster record is wrong")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecodeError("a time of a cluster record is not a finite number")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise DecodeError("a count of a cluster record is out of range")
    return value
