"""Answers of any size on the local sockets, listing the log page by page, and times and JSON
the CLI prints whatever a time field holds."""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reactord.base.errors import ControlError
from reactord.cli import event_commands as event_cli
from reactord.cli.common import ago, iso, print_json, print_json_list, print_rows, time_of_day, to_json
from reactord.control.events_ops import newest_events
from reactord.protocol import codec, framing
from reactord.protocol.errors import DecodeError
from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor, new_id
from reactord.protocol.localsock import LocalServer, Stream
from reactord.store.database import Database
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.schema import MIGRATIONS

ODD_TIMES = [math.nan, math.inf, -math.inf, 1e300, -1e300, -5.0, -0.001, 253402300800.0, 1e17]


# -- frames ------------------------------------------------------------------------------------


def _frames(value: Any, frame_size: int) -> list[tuple[int, bool, bytes]]:
    """The (length, continued, bytes) of each frame ``framing.frames`` writes for ``value``."""
    wire = b"".join(framing.frames(value, frame_size))
    out = []
    while wire:
        (word,) = struct.unpack(">I", wire[:4])
        size = word & 0x7FFFFFFF
        out.append((size, bool(word >> 31), wire[4 : 4 + size]))
        wire = wire[4 + size :]
    return out


async def _read(wire: bytes, max_size: int = framing.MAX_CONTROL_FRAME) -> Any:
    reader = asyncio.StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    return await framing.read_frame(reader, max_size)


class _Socket:
    """What ``recv_frame`` uses of a socket, over bytes given in advance."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv_into(self, view: memoryview, size: int) -> int:
        count = min(size, len(self.data), len(view))
        view[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


def test_a_value_that_fits_is_one_frame_as_before() -> None:
    value = {"ok": True, "result": {"id": "x" * 100}}
    packed = codec.pack(value)
    assert framing.encode(value) == struct.pack(">I", len(packed)) + packed
    assert [(size, more) for size, more, _ in _frames(value, 1 << 20)] == [(len(packed), False)]


def test_a_value_over_one_frame_goes_in_continuation_frames_and_comes_back_whole() -> None:
    value = {"ok": True, "result": {"rows": [{"data": "x" * 1000, "n": n} for n in range(50)]}}
    frames = _frames(value, 4096)
    assert len(frames) > 10
    assert all(more for _, more, _ in frames[:-1]) and not frames[-1][1]
    assert all(size <= 4096 for size, _, _ in frames)
    assert b"".join(part for _, _, part in frames) == codec.pack(value)

    wire = b"".join(framing.frames(value, 4096))
    assert asyncio.run(_read(wire)) == value
    assert framing.recv_frame(_Socket(wire), 1 << 20) == value  # type: ignore[arg-type]


def test_a_reader_bounds_the_whole_message_not_only_each_frame() -> None:
    value = {"blob": "x" * 20_000}
    wire = b"".join(framing.frames(value, 1000))
    with pytest.raises(DecodeError, match="control message of more than 10000 bytes"):
        asyncio.run(_read(wire, max_size=10_000))
    with pytest.raises(DecodeError, match="control message of more than 10000 bytes"):
        framing.recv_frame(_Socket(wire), 10_000)  # type: ignore[arg-type]
    assert asyncio.run(_read(wire, max_size=30_000)) == value


def test_a_stream_that_ends_inside_a_continued_message_is_refused() -> None:
    wire = b"".join(framing.frames({"blob": "x" * 5000}, 1000))
    with pytest.raises(DecodeError, match="truncated frame header"):
        asyncio.run(_read(wire[:2008]))  # two whole frames, then the stream ends
    with pytest.raises(ConnectionError):
        framing.recv_frame(_Socket(wire[:2008]))  # type: ignore[arg-type]


def test_the_pieces_written_are_at_most_one_mib_whatever_the_frame() -> None:
    pieces = list(framing.frames({"blob": b"x" * (3 << 20)}))
    assert max(len(p) for p in pieces) <= 1 << 20
    assert len(pieces) >= 5  # a header, then four slices of the one frame


class _Writer:
    """A StreamWriter whose peer reads ``budget`` messages' worth of pieces, then goes away."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.wire = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.wire += data

    async def drain(self) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise ConnectionResetError("the client went away")


def _messages(wire: bytes) -> list[Any]:
    async def read() -> list[Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(wire)
        reader.feed_eof()
        out = []
        while (value := await framing.read_frame(reader)) is not None:
            out.append(value)
        return out

    return asyncio.run(read())


def test_a_stream_is_produced_only_as_fast_as_it_is_read_and_closed_when_the_client_goes() -> None:
    produced, closed = 0, False

    async def items() -> AsyncIterator[dict[str, int]]:
        nonlocal produced, closed
        try:
            for n in range(1_000_000):
                produced += 1
                yield {"n": n}
        finally:
            closed = True

    async def op(args: dict[str, Any]) -> Any:
        return Stream(items())

    async def main() -> bool:
        server = LocalServer(Path("unused.sock"), {"op": op})
        with pytest.raises(ConnectionResetError):
            await server._answer({"op": "op"}, _Writer(budget=20))  # type: ignore[arg-type]
        return closed  # before the loop ends (which closes any generator left open)

    assert asyncio.run(main())
    assert produced < 20


def test_a_stream_that_fails_midway_ends_with_an_error_reply() -> None:
    async def items() -> AsyncIterator[int]:
        yield 1
        raise ControlError("the log went away", "failed")

    async def op(args: dict[str, Any]) -> Any:
        return Stream(items())

    writer = _Writer(budget=100)
    asyncio.run(LocalServer(Path("unused.sock"), {"op": op})._answer({"op": "op"}, writer))  # type: ignore[arg-type]
    assert _messages(bytes(writer.wire)) == [
        {"ok": True, "item": 1},
        {"ok": False, "error": "the log went away", "code": "failed"},
    ]


# -- listing the log ---------------------------------------------------------------------------


def _log(tmp_path: Path, count: int) -> EventLog:
    log = EventLog(Database(tmp_path / "m.db", MIGRATIONS))
    log.append(
        [
            Event(
                id=id_floor(1000.0 + n),  # the id of that millisecond: ids order as the times
                tag=f"app/{'even' if n % 2 == 0 else 'odd'}",
                source="cli",
                time=1000.0 + n,
                data={"n": n},
                received=1000.0 + n,
            )
            for n in range(count)
        ],
        {},
    )
    return log


async def _listed(log: EventLog, query: EventQuery) -> list[int]:
    return [e.data["n"] async for e in newest_events(log, query)]


def test_a_listing_is_the_newest_events_oldest_first(tmp_path: Path) -> None:
    log = _log(tmp_path, 300)
    assert asyncio.run(_listed(log, EventQuery(limit=5))) == [295, 296, 297, 298, 299]
    assert asyncio.run(_listed(log, EventQuery(limit=0))) == list(range(300))
    assert asyncio.run(_listed(log, EventQuery(limit=3, tag="app/odd"))) == [295, 297, 299]
    assert asyncio.run(_listed(log, EventQuery(limit=0, tag="app/odd", since=1290.0))) == list(
        range(291, 300, 2)
    )
    assert asyncio.run(_listed(log, EventQuery(limit=1000, until=1003.0))) == [0, 1, 2]
    assert asyncio.run(_listed(log, EventQuery(limit=0, source="nobody"))) == []


def test_events_logged_during_a_listing_are_not_part_of_it(tmp_path: Path) -> None:
    log = _log(tmp_path, 200)
    late = Event(id=new_id(), tag="app/late", source="cli", time=0.0, data={"n": -1}, received=0.0)

    async def listing() -> list[int]:
        seen = []
        async for event in newest_events(log, EventQuery(limit=0)):
            seen.append(event.data["n"])
            if event.data["n"] == 10:  # more arrive while the answer is being sent
                log.append([late], {})
        return seen

    assert asyncio.run(listing()) == list(range(200))


def test_a_long_listing_lets_the_loop_run_other_tasks(tmp_path: Path) -> None:
    log = _log(tmp_path, 1000)

    async def main() -> tuple[int, int]:
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        before = turns
        listed = [e async for e in newest_events(log, EventQuery(limit=0))]
        during = turns - before
        task.cancel()
        return len(listed), during

    listed, turns = asyncio.run(main())
    assert listed == 1000
    assert turns >= 10  # 1000 events, a turn every 64 of them at least


# -- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ODD_TIMES)
def test_a_time_that_is_no_date_is_printed_as_the_number(when: float) -> None:
    assert iso(when) == time_of_day(when) == ago(when, now=2e9) == repr(when)


def test_times_in_range_print_as_before() -> None:
    assert iso(1795699626.4864) == "2026-11-26T13:27:06.486Z"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso(1.9996) == "1970-01-01T00:00:02.000Z"  # rounding carries into the seconds
    assert iso(253402300799.999) == "9999-12-31T23:59:59.999Z"
    assert time_of_day(1795699626.4864).endswith(".486") and len(time_of_day(1795699626.4864)) == 12
    assert ago(0.0) == "never"
    assert ago(1000.0, now=1090.0) == "2m ago"
    assert ago(1000.0, now=1000.0 + 3 * 86400) == "3d ago"


def test_a_time_that_is_not_a_number_is_printed_as_it_is() -> None:
    assert iso("soon") == "soon"  # type: ignore[arg-type]
    assert time_of_day(None) == "None"  # type: ignore[arg-type]


# -- JSON --------------------------------------------------------------------------------------


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_writes_nan_and_infinities_as_null() -> None:
    value = {"time": math.nan, "data": {"up": math.inf, "down": [-math.inf, 1e300, -1e300, -5.0]}, "n": 1}
    for indent in (None, 2):
        assert _strict(to_json(value, indent)) == {
            "time": None,
            "data": {"up": None, "down": [None, 1e300, -1e300, -5.0]},
            "n": 1,
        }
    assert math.isnan(value["time"])  # the value printed is not changed


def test_a_json_list_written_item_by_item_is_the_text_of_the_whole_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for items in ([], [{"a": 1}], [{"a": "x\ny", "t": math.nan}, [1, 2], "z"]):
        print_json(items)
        whole = capsys.readouterr().out
        print_json_list(iter(items))
        assert capsys.readouterr().out == whole
        _strict(whole)


def test_a_streamed_table_takes_its_widths_from_the_first_rows(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(["id", "tag"], iter([["a", "x"], ["bb", "y"], ["a-much-longer-id", "z"]]), sample=2)
    assert capsys.readouterr().out.splitlines() == ["ID  TAG", "a   x", "bb  y", "a-much-longer-id  z"]


# -- the commands ------------------------------------------------------------------------------


class _Client:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def call(self, op: str, **args: Any) -> Any:
        return self.answer

    def stream(self, op: str, **args: Any) -> Any:
        return iter(self.answer)


def _odd_event(when: float) -> dict[str, Any]:
    return {
        "id": "01M8C0KRXT476ZSDR0NW77KYGC",
        "tag": "app/odd",
        "source": "cli",
        "time": when,
        "seq": 1,
        "data": {"v": when},
        "received": when,
    }


@pytest.mark.parametrize("when", ODD_TIMES)
def test_event_show_and_list_print_any_time(monkeypatch: pytest.MonkeyPatch, when: float) -> None:
    shown = {**_odd_event(when), "decisions": [], "actions": [], "jobs": [], "caused": []}
    runner = CliRunner()
    monkeypatch.setattr(event_cli, "client", lambda *a, **k: _Client(shown))
    result = runner.invoke(event_cli.event, ["show", "E1"])
    assert result.exit_code == 0, result.output
    assert f"time:      {when!r}  (received {when!r})" in result.output
    result = runner.invoke(event_cli.event, ["show", "E1", "--json"])
    assert result.exit_code == 0 and _strict(result.output)["id"] == shown["id"]

    monkeypatch.setattr(event_cli, "client", lambda *a, **k: _Client([_odd_event(when)]))
    result = runner.invoke(event_cli.event, ["list"])
    assert result.exit_code == 0 and result.output.splitlines()[1].startswith(repr(when))
    result = runner.invoke(event_cli.event, ["list", "--json"])
    assert result.exit_code == 0 and _strict(result.output)[0]["tag"] == "app/odd"


@pytest.mark.parametrize("when", ODD_TIMES)
def test_event_watch_prints_any_time(capsys: pytest.CaptureFixture[str], when: float) -> None:
    event_cli._print_event(_odd_event(when), as_json=False)
    assert capsys.readouterr().out.startswith(f"{when!r}  cli ")
    event_cli._print_event(_odd_event(when), as_json=True)
    line = _strict(capsys.readouterr().out)
    assert line["time"] == (when if math.isfinite(when) else None)
