"""The pipeline with the real reactor over a real database whose writes fail.

A full database (SQLite's own ``max_page_count``: the engine really refuses the write) must
change nothing: no acknowledgement, the state cache and the rule state as the database has
them; the next write that succeeds takes the batch whole. A value the database refuses is
isolated: the other events of its batch are written, it is dropped and acknowledged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import zmq.asyncio

from reactord.actions.context import ActionServices
from reactord.base.config import load_master_config
from reactord.base.stats import Stats
from reactord.bus import Bus
from reactord.pipeline import EventPipeline
from reactord.protocol import messages as m
from reactord.protocol.events import Event
from reactord.reactions import Reactor
from reactord.store.audit import ADD_ACTION, AuditLog
from reactord.store.database import Database
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable

RULES = """
rules:
  - name: once
    on: "minion/*/x"
    throttle: {once_within: 1h}
    do: [{log: "fired on {{ data.n }}", level: debug}]
"""


class Harness:
    def __init__(self, tmp_path: Path, rules: str = RULES) -> None:
        (tmp_path / "reactor.d").mkdir()
        (tmp_path / "reactor.d" / "r.yaml").write_text(rules)
        (tmp_path / "master.yaml").write_text("state_dir: state\npki_dir: pki\n")
        config = load_master_config(str(tmp_path / "master.yaml"))
        self.db = Database(tmp_path / "m.db", MIGRATIONS)
        self.ctx = zmq.asyncio.Context()
        self.bus = Bus(self.ctx, tmp_path / "bus.sock")
        self.acks: list[tuple[str, str, int]] = []
        self.now = 1000.0
        self.stats = Stats()
        self.log = EventLog(self.db)
        state = StateTable(self.db)
        self.reactor = Reactor(
            config,
            event_log=self.log,
            rule_store=SqliteRuleStore(self.db),
            audit=AuditLog(self.db),
            latest=state.previous,
            services=ActionServices(max_depth=8),
            stats=self.stats,
        )
        self.reactor.load()
        self.pipeline = EventPipeline(
            self.log,
            state,
            self.bus,
            self.stats,
            send_ack=lambda *ack: self.acks.append(ack),
            decider=self.reactor,
            monotonic=lambda: self.now,
        )

    def batch(self, first: int, count: int) -> m.EventBatch:
        events: list[Any] = [
            [s, "minion/web01/x", time.time(), {"n": s}, None] for s in range(first, first + count)
        ]
        return m.EventBatch(epoch="e1", base=1, events=events)

    def full(self, on: bool) -> None:
        pages = self.db.conn.execute("PRAGMA page_count").fetchone()[0]
        self.db.conn.execute(f"PRAGMA max_page_count={pages if on else 1 << 30}")

    def rule_state(self) -> list[tuple[Any, ...]]:
        return self.db.conn.execute("SELECT rule, kind FROM rule_state").fetchall()

    def actions(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0])

    def close(self) -> None:
        self.bus.close()
        self.ctx.term()
        self.db.close()


def test_a_full_database_changes_nothing_and_the_next_write_takes_the_batch_whole(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        try:
            h.full(True)
            h.pipeline.offer("web01", h.batch(1, 200))
            assert h.pipeline.commit() == []
            assert h.acks == [] and h.log.count() == 0
            assert h.pipeline.storage_error is not None and "disk full" in h.pipeline.storage_error
            assert len(h.reactor.engine.state.throttles) == 0, "the throttle that fired was not written"
            assert h.pipeline.state.previous("web01", "minion/web01/x") is None
            assert h.reactor.dispatcher.in_flight == 0 and h.stats.get("storage.errors") == 1
            h.full(False)
            h.now += 10.0  # past the backoff
            await asyncio.wait_for(h.pipeline.ready(), 5)
            h.pipeline.offer("web01", h.batch(1, 200))  # the minion sends it again
            assert len(h.pipeline.commit()) == 200
            assert h.acks == [("web01", "e1", 200)] and h.log.count() == 200
            assert h.pipeline.storage_error is None
            assert h.rule_state() == [("once", "throttle")], "written with the event that fired it"
            assert h.actions() == 1, "the firing's action is in the outbox"
            await asyncio.wait_for(h.reactor.dispatcher.wait_room(), 5)
        finally:
            await h.reactor.close()
            h.close()

    asyncio.run(scenario())


def test_a_value_the_database_refuses_is_dropped_alone_and_acknowledged(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        real = h.log.append

        def append(events: list[Any], *args: Any, **kwargs: Any) -> None:
            if any(e.seq == 3 for e in events):
                raise sqlite3.IntegrityError("a value this test makes the database refuse")
            real(events, *args, **kwargs)

        h.log.append = append  # type: ignore[method-assign]
        try:
            h.pipeline.offer("web01", h.batch(1, 5))
            written = h.pipeline.commit()
            assert [e.seq for e in written] == [1, 2, 4, 5]
            assert h.acks[-1] == ("web01", "e1", 5), "acknowledged past the bad one: no poison batch"
            assert h.stats.get("drop.unstorable") == 1
            assert sorted(e.data["n"] for e in h.log.iterate(EventQuery(limit=0))) == [1, 2, 4, 5]
            assert h.actions() == 1, "the throttle let one firing through, once"
        finally:
            await h.reactor.close()
            h.close()

    asyncio.run(scenario())


def test_in_event_time_an_actions_row_is_created_at_its_events_arrival_not_the_batchs_clock(
    tmp_path: Path,
) -> None:
    """A cluster's masters apply the same events in batches cut differently: an action's row
    must not take the time of whatever batch it was decided in (it did: ``event show``
    differed between masters)."""
    rules = 'rules:\n  - name: each\n    on: "minion/*/x"\n    do: [{log: "{{ data.n }}", level: debug}]\n'
    harness = Harness(tmp_path, rules)
    harness.reactor.event_time = True
    harness.reactor.dispatcher.clock = lambda: 5000.0  # the batch's clock: latest arrival
    events = [
        Event(
            id=f"e{n}",
            tag="minion/web01/x",
            source="web01",
            time=1000.0 + n,
            data={"n": n},
            received=1000.0 + n,
        )
        for n in range(3)
    ]
    decided = harness.reactor.decide([(e, None) for e in events])
    rows = [row for sql, batch in decided.writes if sql == ADD_ACTION for row in batch]
    assert sorted((row[1], row[6]) for row in rows) == [(e.id, e.received) for e in events]
    harness.close()
