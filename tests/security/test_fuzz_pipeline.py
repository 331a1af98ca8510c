"""Property-based fuzzing past the decoders, into the database: whole frames with hostile
numbers, times, strings and nesting go through ``from_wire``, then the pipeline with the real
reactor over a real database (events), ``JobStore.add_return`` (returns) and
``MinionRegistry.upsert_hello`` (hellos).

What must hold: the protocol boundary refuses exactly what no column can hold (an oracle
written from the limits in docs/security.md, not from the code); what it lets through is
written without an error, reads back as it came, and is acknowledged only once written."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq.asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reactord.actions.context import ActionServices
from reactord.base import jsonable
from reactord.base.config import load_master_config
from reactord.base.stats import Stats
from reactord.bus import Bus
from reactord.pipeline import EventPipeline
from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, TagError
from reactord.protocol.tags import is_valid_minion_id, validate_tag
from reactord.reactions import Reactor
from reactord.store.audit import AuditLog
from reactord.store.database import Database
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.jobstore import JobStore
from reactord.store.minions import MinionRegistry
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the limits, as documented (docs/security.md, "Limits"): the oracle's only source -------------

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
YEAR_3000 = 32503680000.0
MAX_DEPTH = 64
TOKEN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _int64(value: Any, low: int = INT64_MIN) -> bool:
    return type(value) is int and low <= value <= INT64_MAX


def _time(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= YEAR_3000


def _token(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 64 and set(value) <= TOKEN


def storable_batch(body: dict[str, Any]) -> bool:
    return (
        _token(body["epoch"])
        and _int64(body["base"], 1)
        and all(
            _int64(seq, 1)
            and isinstance(tag, str)
            and _time(when)
            and isinstance(data, dict)
            and _depth(data) <= MAX_DEPTH
            and (causation is None or isinstance(causation, str))
            for seq, tag, when, data, causation in body["events"]
        )
    )


def storable_return(body: dict[str, Any]) -> bool:
    return (
        _token(body["jid"])
        and isinstance(body["id"], str)
        and is_valid_minion_id(body["id"])
        and type(body["success"]) is bool
        and _int64(body["retcode"])
        and _depth([body["ret"]]) <= MAX_DEPTH - 1
        and (body["error"] is None or isinstance(body["error"], str))
        and _time(body["started"])
        and _time(body["finished"])
    )


def storable_hello(body: dict[str, Any]) -> bool:
    functions = body["functions"]
    return (
        isinstance(body["id"], str)
        and is_valid_minion_id(body["id"])
        and isinstance(body["grains"], dict)
        and _depth(body["grains"]) <= MAX_DEPTH
        and isinstance(body["version"], str)
        and isinstance(functions, list)
        and all(isinstance(f, str) and len(f) <= 128 for f in functions)
        and _int64(body["protocol"])
    )


# -- hostile values -------------------------------------------------------------------------------

edge_ints = st.sampled_from([0, 1, -1, INT64_MAX, INT64_MAX + 1, 2**64 - 1, INT64_MIN, 2**53 + 1])
ints = edge_ints | st.integers(INT64_MIN, 2**64 - 1)
edge_floats = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e300, -1e300, -0.0, 5e-324, YEAR_3000, YEAR_3000 + 1, -1.0]
)
floats = edge_floats | st.floats()
odd_text = st.text(max_size=24) | st.sampled_from(
    ["", "\x00", "\x1b[2J", "a\nb\r\n", "\u2028\u202e", "😀" * 8, "x" * 5000, "../../etc", "minion/web01"]
)
scalars = st.none() | st.booleans() | ints | floats | odd_text | st.binary(max_size=16)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A map that nests ``depth`` levels (itself included)."""
    value: Any = {"leaf": leaf}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


deep = st.integers(MAX_DEPTH - 3, MAX_DEPTH + 2).map(nested)
allowed_deep = st.integers(MAX_DEPTH - 3, MAX_DEPTH).map(nested)
data_maps = st.dictionaries(st.sampled_from(["v", "k", "s"]) | odd_text, values, max_size=4) | st.builds(
    lambda v, k: {"v": v, "k": k}, values, values
)
NOW = time.time()
times = st.just(NOW) | floats | ints
valid_tags = st.sampled_from(["x", "t/a", "beacon/load", "y/z"]).map("minion/web01/{}".format)
tags = (
    valid_tags
    | st.sampled_from(
        ["minion/web02/x", "reactor/key/web03/accepted", "minion/web01", "minion/web01/", "minion/web01/a b"]
    )
    | odd_text
)


Field = Callable[[st.SearchStrategy[Any], st.SearchStrategy[Any]], Any]


def _fields(draw: st.DrawFn) -> Field:
    """How a frame's fields are drawn: half the frames well formed, but for the values inside
    their maps and lists; in the other half, each field is hostile one time in four."""
    odds = draw(st.sampled_from([0, 4]))

    def field(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
        return draw(bad) if odds and draw(st.integers(1, odds)) == 1 else draw(good)

    return field


@st.composite
def batch_bodies(draw: st.DrawFn) -> dict[str, Any]:
    field = _fields(draw)
    epoch = field(st.sampled_from(["fresh", "same"]), odd_text)  # "fresh": a new one each time
    base = field(st.integers(1, 3), ints)
    start = base if type(base) is int else 1
    events = [
        [
            field(st.just(min(start + i, 2**64 - 1)), ints),  # no more than msgpack can carry
            field(valid_tags, tags),
            field(st.just(NOW), times),
            field(data_maps | allowed_deep, values | deep),
            field(st.none(), odd_text),
        ]
        for i in range(draw(st.integers(0, 8)))
    ]
    return {"epoch": epoch, "base": base, "events": events}


@st.composite
def return_bodies(draw: st.DrawFn) -> dict[str, Any]:
    field = _fields(draw)
    return {
        "jid": field(st.just("01JOBJOBJOBJOBJOBJOBJOB"), odd_text),
        "id": field(st.just("web01"), odd_text),
        "success": field(st.booleans(), scalars),
        "retcode": field(st.integers(-255, 255), ints),
        "ret": field(values | st.integers(1, MAX_DEPTH - 2).map(lambda d: [nested(d)]), deep),
        "error": field(st.none() | st.text(max_size=40), odd_text | ints),
        "started": field(st.just(NOW), times),
        "finished": field(st.just(NOW), times),
    }


@st.composite
def hello_bodies(draw: st.DrawFn) -> dict[str, Any]:
    field = _fields(draw)
    return {
        "id": field(st.sampled_from(["web01", "db-02", "x.y_z"]), odd_text),
        "grains": field(data_maps | allowed_deep, values | deep),
        "version": field(st.text(max_size=80), ints),
        "functions": [
            field(st.sampled_from(["test.ping", "grains.get"]), st.just("x" * 129) | odd_text | ints)
            for _ in range(draw(st.integers(0, 4)))
        ],
        "protocol": field(st.just(1), ints),
    }


def _frame(kind: str, body: dict[str, Any]) -> bytes:
    return codec.pack([kind, body])


def _decoded(cls: type[Any], kind: str, body: dict[str, Any], storable: Callable[[Any], bool]) -> Any:
    """The message, or None when the boundary refused it: exactly when the oracle says no
    column can hold it."""
    try:
        message = cls.from_wire(_frame(kind, body))
    except DecodeError as exc:
        assert not storable(body), f"a storable {kind} was refused: {exc}"
        event("refused at the boundary")
        return None
    event("taken")
    assert storable(body), f"an unstorable {kind} got through the boundary: {body!r}"[:2000]
    return message


def _same(a: Any, b: Any) -> bool:
    """Equal as the wire carries them (NaN equals NaN, 1 differs from 1.0 and from True)."""
    return codec.pack(a) == codec.pack(b)


# -- events: through the pipeline, the real reactor, the log and the delivery state ---------------

RULES = """
rules:
  - name: compare
    on: "minion/**"
    when: {data.v: {gt: 0}}
    do: [{log: "v {{ data.v }}", level: debug}]
  - name: text
    on: "minion/**"
    when: {data.s: {regex: "^a.*z$", ignore_case: true}}
    do: [{log: "s {{ data.s }}", level: debug}]
  - name: transitions
    on: "minion/**"
    changed: data.v
    when: {data.k: {exists: true}, data.v: {exists: true}}
    threshold: {count: 2, within: 1h, key: "{{ data.k }}"}
    do: [{fire: ops/changed, data: {v: "{{ data.v }}", k: "{{ data.k }}"}}]
  - name: once
    on: "minion/**"
    when: {data.k: {exists: true}}
    throttle: {once_within: 1h, key: "{{ data.k }}"}
    do: [{log: "once {{ data.k }}", level: debug}]
"""


class EventPath:
    """The event path of a master, in this process: a real pipeline, reactor and database."""

    def __init__(self, root: Path) -> None:
        (root / "reactor.d").mkdir()
        (root / "reactor.d" / "fuzz.yaml").write_text(RULES)
        (root / "master.yaml").write_text("state_dir: state\npki_dir: pki\n")
        config = load_master_config(str(root / "master.yaml"))
        self.db = Database(root / "m.db", MIGRATIONS)
        self.ctx = zmq.asyncio.Context()
        self.bus = Bus(self.ctx, root / "bus.sock")
        self.stats = Stats()
        self.log = EventLog(self.db)
        self.acks: dict[tuple[str, str], int] = {}
        state = StateTable(self.db)
        self.reactor = Reactor(
            config,
            event_log=self.log,
            rule_store=SqliteRuleStore(self.db),
            audit=AuditLog(self.db),
            latest=state.previous,
            services=ActionServices(
                max_depth=8,
                # the pipeline is made below, with the reactor as its decider
                emit=lambda tag, data, **how: self.pipeline.emit(tag, data, **how),
                made_by=self.log.by_action,
            ),
            stats=self.stats,
        )
        self.reactor.load()
        self.pipeline = EventPipeline(
            self.log, state, self.bus, self.stats, send_ack=self._ack, decider=self.reactor
        )

    def _ack(self, source: str, epoch: str, seq: int) -> None:
        self.acks[(source, epoch)] = seq

    async def take(self, batch: m.EventBatch) -> list[Any]:
        """Offer and commit one batch, as ingest does; then let the actions it decided run."""
        self.pipeline.offer("web01", batch)
        written = self.pipeline.commit()
        for _ in range(10_000):  # a bounded wait on the loop for the firings to finish
            if not self.reactor.dispatcher.in_flight:
                return written
            await asyncio.sleep(0)
        raise AssertionError("the actions did not finish")

    def restarted(self) -> EventPipeline:
        """A pipeline over the same database, as after a restart (no reactor)."""
        log, state = EventLog(self.db), StateTable(self.db)
        return EventPipeline(log, state, self.bus, Stats(), send_ack=lambda *ack: None)

    async def close(self) -> None:
        await self.reactor.close()
        self.bus.close()
        self.ctx.term()
        self.db.close()


@contextmanager
def event_path(root: Path) -> Iterator[tuple[EventPath, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()

    async def build() -> EventPath:
        return EventPath(root)

    node = loop.run_until_complete(build())
    try:
        yield node, loop
    finally:
        loop.run_until_complete(node.close())
        loop.close()


def _kept(tag: Any) -> bool:
    """Whether the pipeline keeps an event of web01 with this tag (a valid tag in its namespace)."""
    try:
        validate_tag(tag)
    except TagError:
        return False
    return bool(tag.startswith("minion/web01/"))


def test_whole_event_frames_reach_the_log_intact_or_are_refused_at_the_boundary(tmp_path: Path) -> None:
    fresh = itertools.count()
    with event_path(tmp_path) as (node, loop):

        @FUZZ
        @given(batch_bodies())
        def feed(body: dict[str, Any]) -> None:
            if body["epoch"] == "fresh":
                body = {**body, "epoch": f"fresh{next(fresh)}"}
            batch = _decoded(m.EventBatch, "events", body, storable_batch)
            if batch is None:
                return
            before = node.log.delivery().get(("web01", batch.epoch), 0)
            written = loop.run_until_complete(node.take(batch))  # never raises
            assert node.stats.get("drop.unstorable") == 0, "the database refused what the boundary let in"
            acked = node.acks[("web01", batch.epoch)]
            assert node.log.delivery()[("web01", batch.epoch)] == acked, "acknowledged is what is durable"
            sent: dict[int, tuple[Any, ...]] = {}
            for seq, tag, when, data, _ in batch.events:
                sent.setdefault(seq, (tag, when, data))  # a repeated seq is a duplicate
            owed = [s for s in sent if before < s <= acked and _kept(sent[s][0]) and s >= batch.base]
            assert sorted(e.seq for e in written) == sorted(owed), "an acknowledged event is not logged"
            for event in written:
                back = node.log.get(event.id)
                assert back is not None
                tag, when, data = sent[event.seq]
                assert (back.tag, back.source, back.epoch, back.seq) == (tag, "web01", batch.epoch, event.seq)
                assert back.time == float(when) and _same(back.data, data)
            restarted = node.restarted()  # a re-send after a restart, and one now: logged once
            restarted.offer("web01", batch)
            assert restarted.commit() == []
            assert loop.run_until_complete(node.take(batch)) == []
            dead = node.reactor.audit.dead_letters()
            assert not dead, [d.public() for d in dead]

        feed()
        logged = list(node.log.iterate(EventQuery(source="web01", limit=0)))
        assert all(node.log.get(e.id) is not None for e in logged)


# -- returns and hellos: into the job store and the minion registry --------------------------------


def test_whole_return_frames_are_stored_and_read_back_or_refused_at_the_boundary(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    jobs = JobStore(db)

    @FUZZ
    @given(return_bodies())
    def feed(body: dict[str, Any]) -> None:
        ret = _decoded(m.Return, "return", body, storable_return)
        if ret is None:
            return
        db.conn.execute("DELETE FROM returns")
        assert jobs.add_return(ret, received=time.time())
        back = jobs.returns(ret.jid)[ret.id]
        assert (back.success, back.retcode, back.error, back.started, back.finished) == (
            ret.success,
            ret.retcode,
            ret.error,
            ret.started,
            ret.finished,
        )
        assert jsonable.dumps(back.ret) == jsonable.dumps(ret.ret)  # the ret column is JSON text

    try:
        feed()
    finally:
        db.close()


def test_whole_hello_frames_are_registered_and_read_back_or_refused_at_the_boundary(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    registry = MinionRegistry(db)

    @FUZZ
    @given(hello_bodies())
    def feed(body: dict[str, Any]) -> None:
        hello = _decoded(m.Hello, "hello", body, storable_hello)
        if hello is None:
            return
        registry.upsert_hello(hello.id, hello.grains, hello.version, hello.functions, time.time())
        back = MinionRegistry(db).get(hello.id)  # read from the database, as after a restart
        assert back is not None
        assert jsonable.dumps(back.grains) == jsonable.dumps(hello.grains)
        assert (back.version, back.functions) == (hello.version, hello.functions)

    try:
        feed()
    finally:
        db.close()
