"""Rules over several events, on the engine with event times as the clock: correlate,
sequence, absence and fleet; their bounds, their persistence and their refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from reactord.actions.kinds import KINDS
from reactord.actions.outbox import matched_context, restore_matched
from reactord.protocol.events import Event
from reactord.reactor.conditions import Counter
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.rules import RuleError, RuleSet, load_rules_text
from reactord.reactor.rulestate import RuleState

LOG = [{"log": "{{ events.a.source }} {{ events.b.data.n }}", "level": "debug"}]


def rules(*specs: dict[str, Any]) -> RuleSet:
    counter = Counter()
    text = yaml.safe_dump({"rules": list(specs)}, sort_keys=False)
    return RuleSet(tuple(load_rules_text(text, "t.yaml", counter, kinds=KINDS)), ("t.yaml",), counter)


def ev(tag: str, t: float, source: str = "web01", n: int = 0, **data: Any) -> Event:
    return Event(id=f"{source}-{tag}-{t}", tag=tag, source=source, time=t, data={"n": n, **data}, received=t)


def decide(engine: Engine, event: Event, *, commit: bool = True) -> Decision:
    (decision,) = engine.evaluate(event, None, event.time, commit=commit)
    return decision


def correlate(**spec: Any) -> dict[str, Any]:
    body = {"events": {"a": {"on": "app/a"}, "b": {"on": "app/b"}}, "within": "60s", "key": "{{ source }}"}
    return {"name": "c", "correlate": {**body, **spec}, "do": LOG}


def test_correlate_joins_events_of_one_key_within_the_window_and_never_mixes_keys() -> None:
    engine = Engine(rules(correlate()))
    assert not decide(engine, ev("app/a", 0, "web01")).fired
    other = decide(engine, ev("app/b", 10, "web02"))  # another host: its own key
    assert not other.fired and "has b; waiting for a" in str(other.reason) and "'web02'" in str(other.reason)
    joined = decide(engine, ev("app/b", 20, "web01", n=7))
    assert joined.fired and joined.event.matched is not None
    assert {k: e.source for k, e in joined.event.matched.items()} == {"a": "web01", "b": "web01"}
    rendered = joined.rule.do[0].render(joined.event)
    assert rendered["message"] == "web01 7"
    # fired: the key starts over; a lone a more than the window after web02's b does not join it
    assert not decide(engine, ev("app/b", 30, "web01")).fired
    assert not decide(engine, ev("app/a", 71, "web02")).fired


def test_correlate_need_counts_distinct_patterns_and_any_fires_on_each() -> None:
    three = {"a": {"on": "app/a"}, "b": {"on": "app/b"}, "c": {"on": "app/c", "when": {"data.n": {"gt": 1}}}}
    engine = Engine(rules(correlate(events=three, need=2)))
    assert not decide(engine, ev("app/a", 0)).fired
    assert not decide(engine, ev("app/a", 1)).fired  # the same pattern twice is one
    missed = decide(engine, ev("app/c", 2, n=1), commit=False)
    assert "matches no pattern" in str(missed.reason) and "c: data.n" in str(missed.reason)
    assert decide(engine, ev("app/c", 3, n=2)).fired
    anyof = Engine(rules(correlate(need="any")))
    assert decide(anyof, ev("app/a", 0)).fired and decide(anyof, ev("app/b", 1)).fired


def test_explain_changes_nothing_and_says_what_is_still_awaited_until_when() -> None:
    engine = Engine(rules(correlate()))
    decide(engine, ev("app/a", 100))
    told = decide(engine, ev("app/a", 110, "web09"), commit=False)
    assert "waiting for b" in str(told.reason) and "+60.0s" in str(told.reason)
    assert engine.state.keys_of("c")["keys"] == 1  # web09's was not kept
    assert decide(engine, ev("app/b", 150), commit=False).fired
    assert decide(engine, ev("app/b", 151)).fired  # the explained one did not consume it


def test_sequence_in_order_within_the_window_restarts_and_ignores_out_of_order() -> None:
    steps = {"a": {"on": "app/a"}, "b": {"on": "app/b"}, "c": {"on": "app/c"}}
    engine = Engine(
        rules({"name": "s", "sequence": {"events": steps, "within": "60s", "key": "{{ source }}"}, "do": LOG})
    )
    assert "out of order" in str(decide(engine, ev("app/b", 0)).reason)
    assert not decide(engine, ev("app/a", 1)).fired
    assert "out of order" in str(decide(engine, ev("app/c", 2)).reason)  # b comes first
    assert not decide(engine, ev("app/b", 3)).fired
    assert decide(engine, ev("app/c", 4)).fired
    # too slow: the window counts from the first step
    decide(engine, ev("app/a", 100))
    decide(engine, ev("app/b", 120))
    assert "window ran out" in str(decide(engine, ev("app/c", 161)).reason)
    # a new start replaces an old one
    decide(engine, ev("app/a", 200))
    decide(engine, ev("app/a", 250))
    decide(engine, ev("app/b", 290))
    assert decide(engine, ev("app/c", 300)).fired  # 50 s after the second a


def absence_rules() -> RuleSet:
    spec = {
        "events": {"a": {"on": "job/*/start"}, "b": {"on": "job/*/end"}},
        "within": "10m",
        "key": "{{ data.job }}",
    }
    return rules({"name": "w", "absence": spec, "do": [{"log": "{{ events.a.data.job }} never ended"}]})


def test_absence_fires_at_its_deadline_per_key_and_an_end_in_time_cancels() -> None:
    engine = Engine(absence_rules())
    assert "waiting for b" in str(decide(engine, ev("job/x/start", 0, job="j1")).reason)
    decide(engine, ev("job/x/start", 10, job="j2"))
    assert "already waiting" in str(decide(engine, ev("job/x/start", 20, job="j1")).reason)
    assert "came in time" in str(decide(engine, ev("job/x/end", 300, job="j2")).reason)
    assert engine.next_due() == 600
    assert engine.due_holds(599) == []
    (due,) = engine.due_holds(600)
    assert due.fired and due.due == "absence" and due.event.data["job"] == "j1"
    assert due.rule.do[0].render(due.event)["message"] == "j1 never ended"
    assert engine.next_due() is None and "no a waits" in str(
        decide(engine, ev("job/x/end", 700, job="j1")).reason
    )


def test_absence_waits_survive_a_restart_and_fire_late_rather_than_never() -> None:
    engine = Engine(absence_rules())
    decide(engine, ev("job/x/start", 0, job="j1"))
    rows, _ = engine.state.take_changes()
    stored = json.loads(json.dumps(rows))  # plain values, as storage keeps them
    state = RuleState()
    state.load_rows(stored)
    after = Engine(absence_rules(), state)  # the master started again, an hour later
    late = decide(after, ev("job/x/end", 3599, job="j1"))  # taken before the first tick
    assert "after the deadline" in str(late.reason)
    (due,) = after.due_holds(3600)
    assert due.fired and due.event.id == "web01-job/x/start-0"


def up(presence: str = "up") -> SimpleNamespace:
    return SimpleNamespace(grains={}, presence=presence)


def fleet_rules(**spec: Any) -> RuleSet:
    body = {"target": "web*", "on": "app/load", "when": {"data.n": {"gt": 4}}, "max_age": "2m", "percent": 50}
    return rules({"name": "f", "fleet": {**body, **spec}, "do": [{"log": "{{ events.fleet.data.minions }}"}]})


def test_a_fleet_condition_fires_on_crossing_and_again_only_after_its_clear_level() -> None:
    fleet = {f"web0{i}": up() for i in range(1, 7)} | {"db01": up()}
    engine = Engine(fleet_rules(clear=20), minions=lambda: fleet)
    fires, reasons = [], []
    for t, (minion, load) in enumerate(
        [
            ("web01", 9),
            ("web02", 9),
            ("db01", 9),
            ("web03", 9),
            ("web01", 1),
            ("web01", 9),
            ("web02", 1),
            ("web03", 1),
        ]
    ):
        decision = decide(engine, ev("app/load", t, minion, n=load))
        fires.append(decision.fired)
        reasons.append(str(decision.reason))
        if decision.fired:
            assert decision.event.matched is not None
            assert decision.event.matched["fleet"].data["minions"] == ["web01", "web02", "web03"]
            assert decision.event.matched["fleet"].data["total"] == 6  # db01 is not selected
    # 3 of 6 is 50%: fires; down to 2 (33%) and up to 3 again: not again (not cleared to
    # 20%); down to 1 of 6 (17%): re-armed
    assert fires == [False, False, False, True, False, False, False, False]
    assert "fires again after falling to 20%" in reasons[5] and "re-armed" in reasons[7]
    assert not decide(engine, ev("app/load", 10, "web04", n=9)).fired  # web01, web04
    assert decide(engine, ev("app/load", 11, "web05", n=9)).fired


def test_a_fleet_condition_counts_presence_and_ages_latest_events_out() -> None:
    fleet = {f"web0{i}": up() for i in range(1, 5)}
    engine = Engine(fleet_rules(), minions=lambda: fleet)
    decide(engine, ev("app/load", 0, "web01", n=9))
    assert decide(engine, ev("app/load", 1, "web02", n=9)).fired  # 2 of 4
    fleet["web02"] = up("down")
    down = decide(engine, ev("reactor/presence/web02/down", 2, "master"))
    assert "re-armed" in str(down.reason) and "1 of 4" in str(down.reason)
    fleet["web02"] = up()
    assert decide(engine, ev("reactor/presence/web02/up", 3, "master")).fired
    engine.due_holds(200)  # the tick: both loads are older than 2m now
    assert not engine.state.levels.get(("f", ""))
    assert "0 of 4" in str(decide(engine, ev("app/load", 201, "web03", n=1)).reason)


def test_a_rules_keys_are_bounded_per_rule_and_the_drops_counted() -> None:
    engine = Engine(rules(correlate(max_keys=10_000)))
    for n in range(100_000):
        engine.evaluate(
            Event(id=str(n), tag="app/a", source=f"h{n}", time=1.0, data={}, received=1.0), None, 1.0
        )
    assert engine.state.keys_of("c") == {"keys": 10_000, "dropped": 90_000}
    assert engine.state.partials.bytes < 16 << 20
    newest = Event(id="x", tag="app/b", source="h99999", time=2.0, data={}, received=2.0)
    assert decide(engine, newest).fired  # the most recent keys are the ones kept


def test_a_byte_budget_bounds_all_rules_together() -> None:
    state = RuleState(match_bytes=1 << 20)
    engine = Engine(rules(correlate(max_keys=1_000_000)), state)
    big = "x" * 10_000
    for n in range(1000):
        engine.evaluate(Event(id=str(n), tag="app/a", source=f"h{n}", time=1.0, data={"big": big}), None, 1.0)
    assert state.partials.bytes <= 1 << 20 and 0 < state.keys_of("c")["keys"] < 100
    assert state.keys_of("c")["dropped"] == 1000 - state.keys_of("c")["keys"]


def test_what_a_firing_matched_is_kept_by_id_and_found_again_on_resume() -> None:
    engine = Engine(rules(correlate()))
    decide(engine, ev("app/a", 0))
    fired = decide(engine, ev("app/b", 1)).event
    context = matched_context(fired)
    assert context is not None and json.loads(context) == {
        "a": {"id": "web01-app/a-0"},
        "b": {"id": "web01-app/b-1"},
    }
    log = {e.id: e for e in fired.matched.values()} if fired.matched else {}
    plain = Event(id=fired.id, tag=fired.tag, source=fired.source, time=fired.time, data=fired.data)
    again = restore_matched(plain, context, log.get)
    assert again is not None and again.matched == fired.matched
    assert restore_matched(plain, context, {}.get) is None  # retention removed a matched event


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"correlate": {"events": {"a": "x/a", "b": "x/b"}}}, "within: a window is required"),
        ({"correlate": {"events": {"a": "x/a", "b": "x/b"}, "within": "0s"}}, "more than 0s"),
        ({"correlate": {"events": {"a": "x/a", "b": "x/b"}, "within": "30d"}}, "at most 7d"),
        ({"correlate": {"events": {"a": "x/a"}, "within": "1m"}}, "two or more named patterns"),
        (
            {
                "correlate": {
                    "events": {"a": "x/a", "b": "x/b"},
                    "within": "1m",
                    "key": "{{ events.a.source }}",
                }
            },
            "key:",
        ),
        ({"correlate": {"events": {"a": "x/a", "b": "x/b"}, "within": "1m", "key": "{{ data.x"}}, "key:"),
        ({"correlate": {"events": {"a": "x/a", "b": "x/b"}, "within": "1m", "need": 3}}, "need:"),
        (
            {"sequence": {"events": {"a": "x/a", "b": "x/b"}, "within": "1m"}, "on": "x/a"},
            "not with sequence",
        ),
        ({"absence": {"events": {"a": "x/a", "b": "x/b", "c": "x/c"}, "within": "1m"}}, "names two patterns"),
        (
            {"absence": {"events": {"a": "x/a", "b": "x/b"}, "within": "1m"}, "fleet": {}},
            "not absence and fleet",
        ),
        ({"fleet": {"target": "web*", "on": "x/a", "count": 1}}, "max_age: required"),
        ({"fleet": {"target": "web*", "count": 1, "percent": 5}}, "one of count"),
        ({"fleet": {"target": "web*", "count": 2, "clear": 2}}, "clear: must be below"),
        ({"fleet": {"target": "web*", "percent": 120}}, "percentage"),
        ({"fleet": {"target": "G@", "target_type": "compound", "count": 1}}, "target:"),
        (
            {
                "correlate": {
                    "events": {"a": {"on": "x/a", "when": {"events.a.data": 1}}, "b": "x/b"},
                    "within": "1m",
                }
            },
            "bad path",
        ),
    ],
)
def test_rule_files_with_unbounded_or_unrenderable_parts_are_refused(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuleError, match=message.replace("(", r"\(")):
        rules({"name": "r", **spec, "do": LOG})


def test_keys_from_event_data_are_bounded_in_length_and_stay_distinct() -> None:
    engine = Engine(rules(correlate(key="{{ data.k }}")))
    for k in ("a" * 10_000, "a" * 10_000 + "b"):
        decide(engine, ev("app/a", 0, k=k))
    kept = [key for (_, key), _ in engine.state.partials.all_items()]
    assert len(kept) == 2 and all(k.startswith("sha256:") and len(k) == 71 for k in kept)
    assert decide(engine, ev("app/b", 1, k="a" * 10_000)).fired


def test_the_tick_drops_partial_matches_whose_window_passed() -> None:
    engine = Engine(rules(correlate()))
    for n in range(5):
        decide(engine, ev("app/a", n, f"h{n}"))
    decide(engine, ev("app/a", 50, "late"))
    engine.due_holds(62.5)  # h0..h2 are past the 60 s window; h3, h4 and late are not
    assert sorted(key for (_, key), _ in engine.state.partials.all_items()) == ["h3", "h4", "late"]
    rows, _ = engine.state.take_changes()
    assert sorted(key for kind, _, key, value in rows if kind == "partial" and value is None) == [
        "h0",
        "h1",
        "h2",
    ]


def test_stored_keys_past_the_default_survive_a_restart_and_a_changed_rule_starts_again() -> None:
    many = rules(correlate(max_keys=20_000))
    engine = Engine(RuleSet((), ()))
    engine.swap(many)
    for n in range(15_000):
        decide(engine, ev("app/a", 0, f"h{n}"))
    stored, _ = engine.state.take_changes()

    def restarted(with_rules: RuleSet) -> Engine:
        state = RuleState()
        state.load_rows(stored)
        again = Engine(RuleSet((), ()), state)
        again.swap(with_rules)  # as the master starts: state first, then the rules
        return again

    again = restarted(many)
    assert again.state.keys_of("c") == {"keys": 15_000, "dropped": 0}
    again.swap(many)  # a reload that changes nothing keeps it
    assert again.state.keys_of("c")["keys"] == 15_000
    assert restarted(rules(correlate(max_keys=20_000, within="2m"))).state.keys_of("c")["keys"] == 0
    reloaded = restarted(many)
    reloaded.swap(rules(correlate(max_keys=20_000, within="2m")))
    assert reloaded.state.keys_of("c")["keys"] == 0


def test_keys_a_limit_drops_as_the_stored_state_loads_are_deleted_from_storage() -> None:
    engine = Engine(rules(correlate(max_keys=100)))
    for n in range(100):
        decide(engine, ev("app/a", 0, f"h{n}"))
    stored, _ = engine.state.take_changes()
    state = RuleState(max_keys=lambda rule: 40)  # a lower limit as they load
    state.load_rows(stored)
    rows, _ = state.take_changes()
    assert len([r for r in rows if r[0] == "partial" and r[3] is None]) == 60 and len(rows) == 60


def test_a_rule_disabled_by_a_reload_never_fires_its_waits() -> None:
    engine = Engine(absence_rules())
    decide(engine, ev("job/x/start", 0, job="j1"))
    spec = {
        "events": {"a": {"on": "job/*/start"}, "b": {"on": "job/*/end"}},
        "within": "10m",
        "key": "{{ data.job }}",
    }
    engine.swap(rules({"name": "w", "enabled": False, "absence": spec, "do": [{"log": "x"}]}))
    assert engine.due_holds(601) == [] and engine.next_due() is None
