"""The action dispatcher with a real audit database: order, failures, skips, dead letters, locks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from reactord.actions.context import ActionContext, ActionServices
from reactord.actions.dispatcher import ActionDispatcher
from reactord.actions.kind import registry
from reactord.actions.kinds import KINDS
from reactord.actions.kinds.log import Log, LogParams
from reactord.base.errors import TargetError
from reactord.base.stats import Stats
from reactord.protocol.events import Event
from reactord.reactor.conditions import Counter
from reactord.reactor.rules import Rule, load_rules_text
from reactord.store.audit import AuditLog
from reactord.store.database import Database
from reactord.store.schema import MIGRATIONS

EVENT = Event(id="E1", tag="x", source="web01", time=1.0, data={"name": "nginx"})


def rule(actions: list[dict[str, Any]]) -> Rule:
    return load_rules_text(
        yaml.safe_dump({"rules": [{"name": "r", "on": "x", "do": actions}]}),
        "t.yaml",
        Counter(),
        kinds=KINDS,
    )[0]


def resolve(target: str, kind: str) -> list[str]:
    raise TargetError(f"a grain target is key:value, got {target!r}")


SERVICES = ActionServices(max_depth=8, jobs=object(), resolve_target=resolve)  # type: ignore[arg-type]


def run(
    tmp_path: Path, actions: list[dict[str, Any]]
) -> tuple[AuditLog, list[dict[str, Any]], ActionDispatcher]:
    audit = AuditLog(Database(tmp_path / "m.db", MIGRATIONS))

    async def scenario() -> ActionDispatcher:
        dispatcher = ActionDispatcher(audit, SERVICES, Stats())
        dispatcher.submit(rule(actions), EVENT)
        async with asyncio.timeout(10):
            while dispatcher.in_flight:
                await asyncio.sleep(0.01)  # poll: the firing is a task of its own
        return dispatcher

    dispatcher = asyncio.run(scenario())
    return audit, audit.actions_for("E1"), dispatcher


def test_a_template_that_does_not_render_stops_there_after_the_earlier_actions_ran(tmp_path: Path) -> None:
    audit, actions, dispatcher = run(
        tmp_path, [{"log": "first {{ data.name }}"}, {"log": "{{ data.missing }}"}, {"log": "third"}]
    )
    assert [a["status"] for a in actions] == ["ok", "dead", "skipped"]
    assert actions[0]["result"] == {"message": "first nginx"}
    (letter,) = audit.dead_letters()
    assert letter.params is None and "data.missing" in letter.error
    ok, error = asyncio.run(dispatcher.retry_dead(letter, EVENT))
    assert not ok and "did not render" in error


def test_a_lock_that_does_not_render_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    _, actions, _ = run(tmp_path, [{"log": "x", "lock": "{{ data.nope }}"}])
    assert [a["status"] for a in actions] == ["dead"]


def test_an_invalid_target_fails_the_action_without_retrying_or_hanging(tmp_path: Path) -> None:
    audit, actions, _ = run(
        tmp_path,
        [
            {
                "run": "test.ping",
                "target": "{{ data.name }}",  # nginx: no key:value (a written target is refused at load)
                "target_type": "grain",
                "retry": {"attempts": 5, "backoff": "10s"},
            },
            {"log": "after"},
        ],
    )
    assert [a["status"] for a in actions] == ["dead", "skipped"]
    assert actions[0]["attempts"] == 1 and "key:value" in actions[0]["error"]
    assert audit.dead_letters()[0].attempts == 1


def test_a_value_from_the_event_cannot_widen_a_target(tmp_path: Path) -> None:
    event = Event(id="E2", tag="x", source="web01", time=1.0, data={"name": "web01 or *"})
    audit = AuditLog(Database(tmp_path / "m.db", MIGRATIONS))

    async def scenario() -> None:
        dispatcher = ActionDispatcher(audit, SERVICES, Stats())
        dispatcher.submit(
            rule([{"run": "test.ping", "target": "{{ data.name }}", "target_type": "compound"}]), event
        )
        async with asyncio.timeout(10):
            while dispatcher.in_flight:
                await asyncio.sleep(0.01)  # poll: the firing is a task of its own

    asyncio.run(scenario())
    (letter,) = audit.dead_letters()
    assert letter.attempts == 0 and "would change the target's shape" in letter.error


def test_labels_show_the_event_s_values(tmp_path: Path) -> None:
    _, actions, _ = run(tmp_path, [{"log": "restarting {{ data.name }} on {{ source }}"}])
    assert actions[0]["label"] == "log restarting nginx on web01"
    assert rule([{"log": "x {{ data.name }}"}]).do[0].label == "log x {{ data.name }}"  # no event: as written


def test_resolved_dead_letters_are_not_retried_again(tmp_path: Path) -> None:
    audit, _, dispatcher = run(tmp_path, [{"log": "{{ data.missing }}"}])
    (letter,) = audit.dead_letters()
    audit.update_dead(letter.id, status="resolved", error="", attempts=1, now=2.0)
    resolved = audit.dead_letter(letter.id)
    assert resolved is not None
    assert asyncio.run(dispatcher.retry_dead(resolved, EVENT)) == (
        False,
        f"dead letter {letter.id} is resolved, not open",
    )


def test_actions_sharing_a_lock_run_one_at_a_time_and_other_keys_do_not_wait(tmp_path: Path) -> None:
    """Three firings: two lock on ``svc:nginx``, one on ``svc:redis``. While the first nginx
    action is held open, the redis one runs to the end and the second nginx one has not
    started; released, the second nginx one runs. Ordering is checked, never timing."""
    audit = AuditLog(Database(tmp_path / "m.db", MIGRATIONS))
    started: list[str] = []
    release: dict[str, asyncio.Event] = {}

    class Held(Log):
        """``log``, held open until the test releases its event."""

        async def execute(self, params: LogParams, ctx: ActionContext) -> dict[str, Any]:
            started.append(ctx.event.id)
            await release[ctx.event.id].wait()
            return {"message": params.message}

    kinds = registry(*(kind for name, kind in KINDS.items() if name != "log"), Held())
    locked = rule([{"log": "{{ data.name }}", "lock": "svc:{{ data.name }}"}])
    events = [
        Event(id="A", tag="x", source="web01", time=1.0, data={"name": "nginx"}),
        Event(id="B", tag="x", source="web02", time=1.0, data={"name": "nginx"}),
        Event(id="C", tag="x", source="web03", time=1.0, data={"name": "redis"}),
    ]

    async def until(condition: Any) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.005)  # poll: each firing is a task of its own

    async def scenario() -> list[str]:
        for event in events:
            release[event.id] = asyncio.Event()
        dispatcher = ActionDispatcher(audit, SERVICES, Stats(), kinds=kinds)
        for event in events:
            dispatcher.submit(locked, event)
        release["C"].set()
        await until(lambda: "A" in started and audit.actions_for("C")[0]["status"] == "ok")
        assert "B" not in started, "the second nginx action ran while the first held the lock"
        assert dispatcher.locks.names() == {"svc:nginx"}
        release["A"].set()
        release["B"].set()
        await until(lambda: not dispatcher.in_flight)
        assert dispatcher.locks.names() == set(), "a lock nobody uses is forgotten"
        return started

    order = asyncio.run(scenario())
    assert order.index("A") < order.index("B")
    assert [audit.actions_for(e.id)[0]["status"] for e in events] == ["ok", "ok", "ok"]
