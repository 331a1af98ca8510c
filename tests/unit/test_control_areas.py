"""Status, fleet, event, rule and dead-letter operations over small fakes: each reads the
master's clock (never the wall clock) and answers from the parts it is given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reactord.base.errors import ControlError
from reactord.base.stats import Stats
from reactord.control import deadletters_ops, events_ops, fleet_ops, rules_ops, status_ops
from reactord.fleet import Row
from reactord.protocol.events import Event
from reactord.store.minions import MinionRecord

NOW = 1_000_000.0  # far from the wall clock: an operation that read it would show


def clock() -> float:
    return NOW


def ask(op: Any, parts: Any, **args: Any) -> Any:
    return asyncio.run(op(parts, args))


def event(event_id: str, **fields: Any) -> Event:
    return Event(
        **{"id": event_id, "tag": "app/x", "source": "web01", "time": NOW - 60, "data": {}, **fields}
    )


class Log:
    """An event log of a few events; ``caused`` maps an id to the ids it caused."""

    def __init__(self, *events: Event, caused: dict[str, list[str]] | None = None) -> None:
        self.events = {e.id: e for e in events}
        self.caused = caused or {}

    def get(self, event_id: str) -> Event | None:
        return self.events.get(event_id)

    def caused_by(self, event_id: str) -> list[Event]:
        return [self.events[i] for i in self.caused.get(event_id, [])]

    def oldest_received(self) -> float | None:
        return min((e.received for e in self.events.values()), default=None)


def test_ping_and_status_count_uptime_and_rates_on_the_masters_clock() -> None:
    stats = Stats()
    stats.event_rate.add(120, NOW)
    parts = status_ops.StatusParts(
        clock=clock,
        started=NOW - 90,
        master_finger="ab:cd",
        stats=stats,
        minions=lambda: [MinionRecord("web01", presence="up"), MinionRecord("web02", presence="suspect")],
        key_listing=lambda: {"accepted": ["web01", "web02"], "pending": ["db01"]},
        database_bytes=lambda: 4096,
        events_logged=lambda: 120,
        rules_loaded=lambda: 3,
        dead_letters=lambda: 1,
        actions=SimpleNamespace(in_flight=2, queued=1, running=1, queued_bytes=10, saturated=False),
        storage=SimpleNamespace(storage_error="disk full", storage_since=NOW - 5, held=7),
        budget_refused={"web02": 4, "web01": 1},
    )
    assert ask(status_ops.ping, parts)["uptime"] == 90
    status = ask(status_ops.status, parts)
    assert status["uptime"] == 90
    assert status["events_per_second"] == 2.0
    assert status["minions"] == {"up": 1, "suspect": 1, "down": 0}
    assert status["keys"] == {"accepted": 2, "pending": 1}
    assert status["storage"] == {"ok": False, "error": "disk full", "since": NOW - 5, "held_events": 7}
    assert list(status["budget_refused"]) == ["web01", "web02"]
    assert (status["rules_loaded"], status["dead_letters"], status["actions_in_flight"]) == (3, 1, 2)


class Fleet:
    ttl = 30.0

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows
        self.asked: dict[str, Any] = {}

    def rows(self, **query: Any) -> list[Row]:
        self.asked = query
        return self._rows

    def gate(self, checks: list[Any], minions: list[str], *, allow_stale: bool = False) -> dict[str, Any]:
        return {"open": True, "minions": minions, "allow_stale": allow_stale}


def fleet_parts(fleet: Fleet, log: Log) -> fleet_ops.FleetParts:
    def resolve(target: str, target_type: str) -> list[str]:
        return [] if target == "none*" else ["web01"]

    return fleet_ops.FleetParts(fleet=fleet, minions=list, events=log, resolve_target=resolve, clock=clock)


def test_state_rows_age_on_the_masters_clock_or_at_the_moment_asked() -> None:
    stored = event("e1", received=NOW - 10)
    fleet = Fleet([Row(stored, "up", None)])
    parts = fleet_parts(fleet, Log(stored))
    now = ask(fleet_ops.state_list, parts, target="web*")
    assert now["rows"][0]["age"] == 10
    assert (now["complete"], fleet.asked["sources"]) == (True, ["web01"])
    then = ask(fleet_ops.state_list, parts, at=NOW - 20)
    assert then["rows"][0]["age"] == -10
    assert then["complete"] is False  # the log does not reach back that far


def test_a_gate_names_its_minions_or_refuses() -> None:
    parts = fleet_parts(Fleet([]), Log())
    checks = [{"on": "app/health"}]
    assert ask(fleet_ops.gate_check, parts, checks=checks, allow_stale=True)["minions"] == ["web01"]
    with pytest.raises(ControlError, match="no accepted minion matches the target") as caught:
        ask(fleet_ops.gate_check, parts, checks=checks, target="none*")
    assert caught.value.code == "no_match"
    with pytest.raises(ControlError) as caught:
        ask(fleet_ops.gate_check, parts, checks=[{"when": {}}])
    assert caught.value.code == "bad_request"


class Reactor:
    """The reactor's rules, audit and dispatcher as the operations see them."""

    rules = SimpleNamespace(rules=())
    fire_counts: dict[str, int] = {}

    def __init__(self) -> None:
        self.retried: list[tuple[str, Event]] = []

    def reload(self) -> tuple[bool, str]:
        return False, "r.yaml:3: unknown key 'onn'"

    def recorded(self, event: Event) -> list[dict[str, Any]]:
        return [{"rule": "r", "fired": True}]

    def explain(self, event: Event, *, stored: bool) -> list[dict[str, Any]]:
        return [{"stored": stored, "time": event.time}]

    def decisions(self, event_id: str) -> list[dict[str, Any]]:
        return [{"rule": "r"}]

    def actions_for(self, event_id: str) -> list[dict[str, Any]]:
        return []

    def dead_letters(self, status: str | None = "open") -> list[Any]:
        return [SimpleNamespace(id="d1", event_id="gone")] if status == "open" else []

    def dead_letter(self, letter_id: str) -> Any:
        return None

    async def retry_dead(self, letter: Any, event: Event) -> tuple[bool, str]:
        self.retried.append((letter.id, event))
        return False, "still failing"

    @staticmethod
    async def replay(query: Any, dry_run: bool) -> AsyncIterator[dict[str, Any]]:
        yield {"dry_run": dry_run, "limit": query.limit}


def test_an_event_given_whole_is_explained_at_the_masters_time_and_a_stored_one_with_its_record() -> None:
    reactor = Reactor()
    parts = rules_ops.RuleParts(catalog=reactor, service=reactor, events=Log(event("e1")), clock=clock)
    given = ask(rules_ops.rules_explain, parts, event={"tag": "app/x"})
    assert (given["recorded"], given["now"]) == (None, [{"stored": False, "time": NOW}])
    stored = ask(rules_ops.rules_explain, parts, id="e1")
    assert stored["recorded"] == [{"rule": "r", "fired": True}]
    with pytest.raises(ControlError, match="no event 'e9' in the log") as caught:
        ask(rules_ops.rules_explain, parts, id="e9")
    assert caught.value.code == "not_found"
    with pytest.raises(ControlError, match="rules not reloaded") as caught:
        ask(rules_ops.rules_reload, parts)
    assert caught.value.code == "invalid_rules"


def test_a_dead_letter_whose_event_left_the_log_is_retried_with_a_stand_in_timed_by_the_master() -> None:
    reactor = Reactor()
    parts = deadletters_ops.DeadLetterParts(audit=reactor, retrier=reactor, events=Log(), clock=clock)
    assert ask(deadletters_ops.dead_retry, parts, all=True) == [
        {"id": "d1", "ok": False, "error": "still failing"}
    ]
    stand_in = reactor.retried[0][1]
    assert (stand_in.id, stand_in.tag, stand_in.time) == ("gone", "reactor/deadletter", NOW)
    with pytest.raises(ControlError, match="no dead letter 'd9'") as caught:
        ask(deadletters_ops.dead_retry, parts, id="d9")
    assert caught.value.code == "not_found"


def event_parts(log: Log, emitted: list[tuple[str, str]]) -> events_ops.EventParts:
    def emit(tag: str, data: dict[str, Any], *, source: str = "master") -> Event:
        emitted.append((tag, source))
        return event("new", tag=tag, source=source)

    jobs = SimpleNamespace(caused_by=lambda event_id: [], returns=lambda jid: {})
    return events_ops.EventParts(
        events=log,
        emitter=SimpleNamespace(emit=emit),
        jobs=jobs,
        audit=Reactor(),
        replay=Reactor.replay,
        bus=SimpleNamespace(probe=lambda token: None),
        bus_path=Path("/run/bus"),
    )


def test_the_cli_fires_events_as_cli_and_never_under_the_masters_prefix() -> None:
    emitted: list[tuple[str, str]] = []
    parts = event_parts(Log(), emitted)
    assert ask(events_ops.event_fire, parts, tag="app/deploy") == {"id": "new", "tag": "app/deploy"}
    assert emitted == [("app/deploy", "cli")]
    with pytest.raises(ControlError, match="belong to the master") as caught:
        ask(events_ops.event_fire, parts, tag="reactor/x")
    assert caught.value.code == "bad_request"


def test_event_show_follows_what_an_event_caused_ten_levels_deep() -> None:
    chain = [event(f"e{i}") for i in range(13)]
    log = Log(*chain, caused={f"e{i}": [f"e{i + 1}"] for i in range(12)})
    shown = ask(events_ops.event_show, event_parts(log, []), id="e0")
    depth = 0
    while "decisions" in shown["caused"][0]:
        shown, depth = shown["caused"][0], depth + 1
    assert depth == 10
    assert shown["caused"][0]["id"] == "e11"  # shown alone, not followed


def test_a_replay_reads_every_stored_event_by_default_and_streams_the_reactors_reports() -> None:
    async def replayed() -> list[Any]:
        answer = await events_ops.event_replay(event_parts(Log(), []), {"dry_run": True})
        return [item async for item in answer.items]

    assert asyncio.run(replayed()) == [{"dry_run": True, "limit": 0}]
