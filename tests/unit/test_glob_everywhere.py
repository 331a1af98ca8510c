"""One table of tag globs, run through every place that takes one, so that they never drift.

Rules (the engine and its index), ``event list`` (the event log's query), ``event replay``,
``state`` (now and ``--at``), ``gate`` and ``event watch`` each answer, for every glob of the
table, which of the tags it matches; every answer must be the table's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from reactord.actions.context import ActionServices
from reactord.actions.kinds import KINDS
from reactord.base.config import load_master_config
from reactord.base.stats import Stats
from reactord.control.events_ops import newest_events
from reactord.fleet import Fleet
from reactord.protocol.events import Event
from reactord.protocol.ids import id_floor
from reactord.protocol.tags import literal_prefix, tag_matches
from reactord.reactions import Reactor
from reactord.reactor.conditions import Counter
from reactord.reactor.engine import Engine
from reactord.reactor.gatechecks import compile_checks
from reactord.reactor.rules import RuleSet, load_rules_text
from reactord.store.audit import AuditLog
from reactord.store.database import Database
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.minions import MinionRegistry
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable
from reactord.watcher import matching

TAGS = (
    "webhook",
    "webhook/x",
    "webhook/x/push",
    "webhook/x/a/b",
    "webhook/xy",
    "other/webhook/x",
    "x",
)
_UNDER_X = {"webhook/x", "webhook/x/push", "webhook/x/a/b"}

#: glob -> the tags of TAGS it matches (written out, never computed).
TABLE: dict[str, set[str]] = {
    "webhook/x/**": _UNDER_X,
    "webhook/**": {"webhook", "webhook/xy"} | _UNDER_X,
    "webhook/*": {"webhook/x", "webhook/xy"},
    "webhook/x*": {"webhook/x", "webhook/xy"},
    "webhook/?": {"webhook/x"},
    "webhook/x": {"webhook/x"},
    "**/x": {"webhook/x", "other/webhook/x", "x"},
    "webhook/**/push": {"webhook/x/push"},
    "webhook/x/**/b": {"webhook/x/a/b"},
    "webhook/x/*/**": {"webhook/x/push", "webhook/x/a/b"},
    "web*/x/**": _UNDER_X,
    "**/webhook/**": set(TAGS) - {"x"},
    "*/webhook/*": {"other/webhook/x"},
    "*": {"webhook", "x"},
    "**": set(TAGS),
    "nothing/**": set(),
}
ROWS = [(glob, tag, tag in expected) for glob, expected in TABLE.items() for tag in TAGS]
T0 = 1_700_000_000.0


def _events() -> list[Event]:
    # one source per tag: a gate is asked per minion
    return [
        Event(id=id_floor(T0 + i), tag=tag, source=f"m{i}", time=T0 + i, data={"n": i}, received=T0 + i)
        for i, tag in enumerate(TAGS)
    ]


def _rules_yaml() -> str:
    rules = [{"name": f"g{i}", "on": glob, "do": [{"log": "x"}]} for i, glob in enumerate(TABLE)]
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


class Stores:
    """The master's stores over one database holding one event (and state row) per tag."""

    def __init__(self, root: Path) -> None:
        self.db = Database(root / "m.db", MIGRATIONS)
        self.log = EventLog(self.db)
        self.state = StateTable(self.db)
        self.log.append(_events(), {})
        self.state.rebuild()  # the state rows: the latest event of each (source, tag)
        self.fleet = Fleet(self.state, self.log, MinionRegistry(self.db), ttl=3600, clock=lambda: T0 + 60)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    return Stores(tmp_path_factory.mktemp("glob"))


def _by_glob(matched: dict[str, set[str]]) -> list[tuple[str, str, bool]]:
    return [(glob, tag, tag in matched[glob]) for glob in TABLE for tag in TAGS]


def test_the_matcher_itself() -> None:
    assert [(g, t, tag_matches(g, t)) for g, t, _ in ROWS] == ROWS


def test_a_literal_prefix_is_what_every_match_starts_with() -> None:
    for glob, tag, expected in ROWS:
        if expected:
            assert tag.startswith(literal_prefix(glob)), (glob, tag)
    assert literal_prefix("webhook/x/**") == "webhook/x"
    assert literal_prefix("webhook/x*") == "webhook/x"
    assert literal_prefix("webhook/*") == "webhook/"
    assert literal_prefix("**") == ""


def test_rules() -> None:
    counter = Counter()
    loaded = load_rules_text(_rules_yaml(), "globs.yaml", counter, kinds=KINDS)
    engine = Engine(RuleSet(tuple(loaded), ("globs.yaml",), counter))
    names = {f"g{i}": glob for i, glob in enumerate(TABLE)}
    matched: dict[str, set[str]] = {glob: set() for glob in TABLE}
    for event in _events():
        for decision in engine.evaluate(event, None, event.time):
            assert decision.fired
            matched[names[decision.rule.name]].add(event.tag)
    assert _by_glob(matched) == ROWS


def test_event_list(stores: Stores) -> None:
    async def listed(glob: str, limit: int) -> set[str]:
        query = EventQuery(tag=glob, limit=limit)
        return {e.tag async for e in newest_events(stores.log, query)}

    matched = {glob: asyncio.run(listed(glob, 0)) for glob in TABLE}
    assert _by_glob(matched) == ROWS
    for glob, expected in TABLE.items():  # a page at a time, newest first: the same answer
        assert {e.tag for e in stores.log.iterate(EventQuery(tag=glob, limit=0), chunk=1)} == expected
        assert asyncio.run(listed(glob, 1)) == ({max(expected, key=TAGS.index)} if expected else set())


def test_event_replay(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "reactor.d").mkdir()
    (tmp_path / "reactor.d" / "globs.yaml").write_text(_rules_yaml())
    (tmp_path / "master.yaml").write_text("state_dir: state\npki_dir: pki\n")
    config = load_master_config(str(tmp_path / "master.yaml"))
    names = {f"g{i}": glob for i, glob in enumerate(TABLE)}

    async def replay(glob: str | None) -> list[dict[str, Any]]:
        reactor = Reactor(
            config,
            event_log=stores.log,
            rule_store=SqliteRuleStore(stores.db),
            audit=AuditLog(stores.db),
            latest=stores.state.previous,
            services=ActionServices(max_depth=8),
            stats=Stats(),
        )
        reactor.load()
        try:
            return [
                i["event"] async for i in reactor.replay(EventQuery(tag=glob, limit=0), True) if "event" in i
            ]
        finally:
            await reactor.close()

    # the events a replay takes, and the rules it fires (the rule on "**" fires on all)
    replayed = {glob: {e["tag"] for e in asyncio.run(replay(glob))} for glob in TABLE}
    assert _by_glob(replayed) == ROWS
    fired: dict[str, set[str]] = {glob: set() for glob in TABLE}
    for event in asyncio.run(replay(None)):
        for name in event["rules"]:
            fired[names[name]].add(event["tag"])
    assert _by_glob(fired) == ROWS


def test_state_now_and_in_the_past(stores: Stores) -> None:
    now = {glob: {r.event.tag for r in stores.fleet.rows(tag=glob)} for glob in TABLE}
    assert _by_glob(now) == ROWS
    past = {glob: {r.event.tag for r in stores.fleet.rows(tag=glob, at=T0 + 30)} for glob in TABLE}
    assert _by_glob(past) == ROWS


def test_gate(stores: Stores) -> None:
    minions = {f"m{i}": tag for i, tag in enumerate(TAGS)}
    matched = {}
    for glob in TABLE:
        result = stores.fleet.gate(compile_checks([{"on": glob}]), list(minions))
        matched[glob] = {minions[m] for m, r in result["minions"].items() if r["ok"]}
    assert _by_glob(matched) == ROWS


def test_event_watch() -> None:
    published = [{"tag": tag, "data": {}} for tag in TAGS]
    matched = {glob: {e["tag"] for e in matching(glob, published)} for glob in TABLE}
    assert _by_glob(matched) == ROWS
