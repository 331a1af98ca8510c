"""Rule files, the tag index, and the engine's stateful steps with event times as the clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reactord.actions.kinds import KINDS
from reactord.protocol.events import Event
from reactord.reactor.conditions import Counter
from reactord.reactor.engine import Engine
from reactord.reactor.rules import RuleError, RuleSet, load_rule_set, load_rules_text
from reactord.reactor.rulestate import RuleState
from reactord.store.database import Database
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS


def rules(*specs: dict[str, Any]) -> RuleSet:
    counter = Counter()
    text = yaml.safe_dump({"rules": list(specs)}, sort_keys=False)
    loaded = load_rules_text(text, "test.yaml", counter, kinds=KINDS)
    return RuleSet(tuple(loaded), ("test.yaml",), counter)


def ev(tag: str, t: float, source: str = "web01", **data: Any) -> Event:
    return Event(id=f"e{t}", tag=tag, source=source, time=t, data=data, received=t)


def fired(engine: Engine, event: Event, previous: Event | None = None) -> list[str]:
    return [d.rule.name for d in engine.evaluate(event, previous, event.time) if d.fired]


@pytest.mark.parametrize(
    "text, where",
    [
        ("rules:\n  - name: a\n    on: x\n", "test.yaml:2: rules[0] (a).do"),
        (
            "rules:\n  - name: a\n    on: x\n    do: [{fire: y}]\n    wen: {}\n",
            "test.yaml:5: rules[0] (a).wen",
        ),
        ("rules:\n  - name: a\n    on: 'a//b'\n    do: [{fire: y}]\n", "test.yaml:3: rules[0] (a).on"),
        (
            "rules:\n  - name: a\n    on: x\n    do:\n      - run: test.ping\n        retry: {attempts: 0}\n",
            "test.yaml:5: rules[0] (a).do[0]: retry.attempts",
        ),
        (
            "rules:\n  - name: a\n    on: x\n    throttle: {once_within: soon}\n    do: [{log: hi}]\n",
            "test.yaml:4: rules[0] (a).throttle",
        ),
        ("rules:\n  - name: a\n    on: x\n    do: [{fire: 'reactor/key/x'}]\n", "belong to the master"),
        ("rules:\n  - name: a\n    on: x\n    do: [{exec: 'rm -rf /'}]\n", "argv; no shell"),
        ("rules:\n  - name: a\n    on: x\n    do: [{log: '{{ 7*7 }}'}]\n", "bad path"),
        (
            "rules:\n  - name: a\n    on: x\n    do: [{log: hi}]\n"
            "  - name: a\n    on: y\n    do: [{log: hi}]\n",
            "duplicate rule name",
        ),
        ("rules:\n  - name: a\n    on: [x\n", "invalid YAML"),
        ("rules:\n  - name: a\n    on: x\n    on: y\n    do: [{log: hi}]\n", "duplicate key"),
    ],
)
def test_rule_errors_name_file_line_and_key(text: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as info:
        load_rule_set([path], kinds=KINDS)
    assert where.replace("test.yaml", str(path)) in str(info.value) or where in str(info.value)


def test_on_is_a_key_not_a_boolean() -> None:
    loaded = rules({"name": "a", "on": "x/y", "do": [{"log": "hi"}]})
    assert loaded.rules[0].on == ("x/y",)


def test_matching_cost_does_not_grow_with_the_number_of_rules() -> None:
    checks = {}
    for count in (10, 10_000):
        rule_set = rules(
            *(
                {"name": f"r{i}", "on": f"minion/*/beacon/b{i}", "when": {"data.x": 1}, "do": [{"log": "hi"}]}
                for i in range(count)
            )
        )
        engine = Engine(rule_set)
        before = rule_set.counter.checks
        assert fired(engine, ev("minion/web01/beacon/b5", 1.0, x=1)) == ["r5"]
        assert fired(engine, ev("minion/web01/other/b5", 2.0, x=1)) == []
        checks[count] = rule_set.counter.checks - before
    assert checks == {10: 1, 10_000: 1}


def test_index_handles_globs_in_and_across_segments() -> None:
    engine = Engine(
        rules(
            {"name": "star", "on": "minion/*/beacon/load", "do": [{"log": "x"}]},
            {"name": "deep", "on": "minion/**/load", "do": [{"log": "x"}]},
            {"name": "part", "on": "minion/web*/beacon/*", "do": [{"log": "x"}]},
            {"name": "lit", "on": "minion/db01/beacon/load", "do": [{"log": "x"}]},
            {"name": "two", "on": ["a/b", "minion/web01/**"], "do": [{"log": "x"}]},
        )
    )
    assert sorted(r.name for r in engine.candidates("minion/web01/beacon/load")) == [
        "deep",
        "part",
        "star",
        "two",
    ]
    assert sorted(r.name for r in engine.candidates("minion/db01/beacon/load")) == ["deep", "lit", "star"]
    assert [r.name for r in engine.candidates("a/b")] == ["two"]


def test_changed_from_to() -> None:
    engine = Engine(
        rules(
            {"name": "any-change", "on": "svc", "changed": "data.running", "do": [{"log": "x"}]},
            {
                "name": "went-down",
                "on": "svc",
                "changed": "data.running",
                "from": True,
                "to": False,
                "do": [{"log": "x"}],
            },
        )
    )
    up1, up2, down, up3 = (
        ev("svc", 1, running=True),
        ev("svc", 2, running=True),
        ev("svc", 3, running=False),
        ev("svc", 4, running=True),
    )
    assert fired(engine, up1, None) == ["any-change"]  # the first value seen is a change
    assert fired(engine, up2, up1) == []
    assert fired(engine, down, up2) == ["any-change", "went-down"]
    assert fired(engine, up3, down) == ["any-change"]
    reasons = {d.rule.name: d.reason for d in engine.evaluate(up2, up1, 2)}
    assert reasons["any-change"] == "changed data.running: still true"


def test_changed_with_for_means_changed_and_stayed_so() -> None:
    engine = Engine(
        rules(
            {
                "name": "down-for-30s",
                "on": "svc",
                "changed": "data.running",
                "from": True,
                "to": False,
                "for": "30s",
                "do": [{"log": "x"}],
            }
        )
    )
    events = [
        ev("svc", 0, running=True),
        ev("svc", 10, running=False),
        ev("svc", 20, running=False),
        ev("svc", 45, running=False),
    ]
    previous = None
    outcomes = []
    for event in events:
        outcomes.append(fired(engine, event, previous))
        previous = event
    assert outcomes == [[], [], [], ["down-for-30s"]]  # stopped at 10, still stopped 35s later
    flap = Engine(engine.rules)
    seq = [
        ev("svc", 0, running=True),
        ev("svc", 10, running=False),
        ev("svc", 20, running=True),
        ev("svc", 30, running=False),
        ev("svc", 45, running=False),
    ]
    previous, outcomes = None, []
    for event in seq:
        outcomes.append(fired(flap, event, previous))
        previous = event
    assert outcomes == [[], [], [], [], []]  # the restart at 20 broke the hold; 30..45 is only 15s
    assert [d.rule.name for d in flap.due_holds(61)] == ["down-for-30s"]


def test_for_needs_the_condition_to_hold_without_flapping() -> None:
    engine = Engine(
        rules(
            {"name": "hot", "on": "load", "when": {"data.v": {"gt": 4}}, "for": "30s", "do": [{"log": "x"}]}
        )
    )
    assert fired(engine, ev("load", 0, v=5)) == []
    assert fired(engine, ev("load", 10, v=6)) == []
    assert fired(engine, ev("load", 20, v=1)) == []  # flapped: the clock starts again
    assert fired(engine, ev("load", 25, v=5)) == []
    assert [d.rule.name for d in engine.due_holds(50)] == []
    assert [d.rule.name for d in engine.due_holds(56)] == ["hot"]  # 31s after 25, with no new event
    assert fired(engine, ev("load", 60, v=5)) == []  # fires once per streak
    assert fired(engine, ev("load", 61, v=1)) == []
    assert fired(engine, ev("load", 62, v=9)) == []
    assert fired(engine, ev("load", 93, v=9)) == ["hot"]  # due at the next event too


def test_throttle_and_threshold_per_key() -> None:
    engine = Engine(
        rules(
            {
                "name": "once",
                "on": "x",
                "throttle": {"once_within": "60s", "key": "{{ source }}"},
                "do": [{"log": "x"}],
            },
            {
                "name": "three",
                "on": "x",
                "threshold": {"count": 3, "within": "10s", "key": "{{ source }}"},
                "do": [{"log": "x"}],
            },
        )
    )
    assert fired(engine, ev("x", 0, "a")) == ["once"]
    assert fired(engine, ev("x", 1, "a")) == []
    assert fired(engine, ev("x", 2, "b")) == ["once"]
    assert fired(engine, ev("x", 3, "a")) == ["three"]  # a's third within 10s
    assert fired(engine, ev("x", 20, "a")) == []  # window restarted after firing, and expired
    assert fired(engine, ev("x", 61, "a")) == ["once"]
    reasons = {d.rule.name: d.reason for d in engine.evaluate(ev("x", 62, "a"), None, 62)}
    assert reasons["once"] == 'throttle: fired 1.0s ago for key "a" (once within 60s)'
    assert reasons["three"].startswith("threshold: ")


def test_rule_state_survives_a_restart(tmp_path: Path) -> None:
    rule_set = rules(
        {"name": "once", "on": "x", "throttle": {"once_within": "1h"}, "do": [{"log": "x"}]},
        {"name": "three", "on": "x", "threshold": {"count": 3, "within": "1h"}, "do": [{"log": "x"}]},
        {"name": "hot", "on": "x", "for": "1m", "do": [{"log": "x"}]},
    )
    db = Database(tmp_path / "m.db", MIGRATIONS)
    engine = Engine(rule_set)
    assert fired(engine, ev("x", 0)) == ["once"]
    assert fired(engine, ev("x", 1)) == []
    changes, _ = engine.state.take_changes()
    with db.transaction() as conn:  # the rows go with a transaction the caller owns
        for sql, rows_ in SqliteRuleStore(db).writes(changes):
            conn.executemany(sql, rows_)
    db.close()

    db = Database(tmp_path / "m.db", MIGRATIONS)
    state = RuleState()
    state.load_rows(SqliteRuleStore(db).rows())
    engine = Engine(rule_set, state)
    assert [d.rule.name for d in engine.due_holds(61)] == ["hot"]  # held since t=0
    assert fired(engine, ev("x", 100)) == ["three"]  # the third within the hour; once stays throttled


def test_state_is_bounded() -> None:
    engine = Engine(
        rules(
            {
                "name": "once",
                "on": "x",
                "throttle": {"once_within": "1h", "key": "{{ source }}"},
                "do": [{"log": "x"}],
            }
        ),
        RuleState(limit=100),
    )
    for i in range(1000):
        fired(engine, ev("x", i, f"m{i}"))
    assert len(engine.state.throttles) == 100 and engine.state.throttles.evicted == 900


def test_depth_limit() -> None:
    engine = Engine(rules({"name": "loop", "on": "x", "do": [{"fire": "x"}]}), max_depth=3)
    deep = Event(id="d", tag="x", source="reactor", time=0, data={}, depth=3)
    decision = engine.evaluate(deep, None, 0)[0]
    assert not decision.fired and decision.reason is not None and decision.reason.startswith("depth limit")


def test_a_rule_that_raises_is_recorded_with_its_error_and_the_others_still_decide(monkeypatch: Any) -> None:
    engine = Engine(
        rules(
            {"name": "broken", "on": "x", "do": [{"log": "x"}]},
            {"name": "fine", "on": "x", "do": [{"log": "x"}]},
        )
    )
    real = Engine._decide

    def decide(self: Engine, rule: Any, *args: Any, **kwargs: Any) -> Any:
        if rule.name == "broken":
            raise RecursionError("what a hostile event could do to a bug")
        return real(self, rule, *args, **kwargs)

    monkeypatch.setattr(Engine, "_decide", decide)
    decisions = {d.rule.name: d for d in engine.evaluate(ev("x", 0), None, 0)}
    assert decisions["fine"].fired
    assert not decisions["broken"].fired
    assert decisions["broken"].reason == "error: RecursionError: what a hostile event could do to a bug"
    assert engine.errors == 1


def test_holds_are_bounded_by_bytes_too() -> None:
    engine = Engine(
        rules({"name": "hot", "on": "x", "for": "1h", "do": [{"log": "x"}]}), RuleState(hold_bytes=1 << 20)
    )
    for i in range(100):
        fired(
            engine,
            Event(id=f"e{i}", tag="x", source=f"m{i}", time=i, data={"big": "y" * 100_000}, received=i),
        )
    assert engine.state.holds.bytes <= 1 << 20 and len(engine.state.holds) < 100
    assert engine.state.holds.evicted == 100 - len(engine.state.holds)
