"""Action kinds: one module and one registry line each. A ``noop`` kind, defined here only,
is loaded from a rule file and run by the dispatcher; the shipped kinds keep their records."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reactord.actions.context import ActionContext, ActionServices
from reactord.actions.dispatcher import ActionDispatcher
from reactord.actions.kind import ActionKind, registry
from reactord.actions.kinds import KINDS
from reactord.actions.kinds.run import RUN_GRACE
from reactord.base.stats import Stats
from reactord.protocol.events import Event
from reactord.reactor.actionspec import ActionParams, text_template
from reactord.reactor.offline import load_offline, run_offline
from reactord.reactor.rules import RuleError, load_rule_set
from reactord.store.audit import AuditLog
from reactord.store.database import Database
from reactord.store.schema import MIGRATIONS

# -- the whole of a new kind: its parameters, their validation, its execution ---------------------


@dataclass(frozen=True, slots=True)
class NoopParams(ActionParams):
    note: Any  # text, or a template of it


class Noop(ActionKind[NoopParams]):
    """``noop``: does nothing but say what it was given. Keys: ``noop`` (a note, a template)."""

    name = "noop"
    keys = ("noop",)
    default_timeout = 1.0
    params_type = NoopParams

    def parse(self, spec: Mapping[str, Any]) -> NoopParams:
        return NoopParams(text_template(spec["noop"], "noop"))

    async def execute(self, params: NoopParams, ctx: ActionContext) -> dict[str, Any]:
        return {"noted": params.note, "rule": ctx.rule}


# -- and its registry line -------------------------------------------------------------------------

TEST_KINDS = registry(*KINDS.values(), Noop())

RULES = """\
rules:
  - name: quiet
    on: "app/**"
    do:
      - noop: "saw {{ data.name }}"
      - log: after the noop
"""
EVENT = Event(id="E1", tag="app/deploy", source="web01", time=1.0, data={"name": "nginx"})


def test_a_kind_defined_in_a_test_is_loaded_from_a_rule_file_and_run_by_the_dispatcher(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quiet.yaml"
    path.write_text(RULES)
    (rule,) = load_rule_set([path], kinds=TEST_KINDS).rules
    assert [spec.kind for spec in rule.do] == ["noop", "log"]
    assert rule.do[0].timeout == 1.0 and rule.do[0].label == "noop saw {{ data.name }}"
    audit = AuditLog(Database(tmp_path / "m.db", MIGRATIONS))

    async def scenario() -> None:
        dispatcher = ActionDispatcher(audit, ActionServices(max_depth=8), Stats(), kinds=TEST_KINDS)
        dispatcher.submit(rule, EVENT)
        async with asyncio.timeout(10):
            while dispatcher.in_flight:
                await asyncio.sleep(0.01)  # poll: the firing is a task of its own

    asyncio.run(scenario())
    noop, log = audit.actions_for("E1")
    assert (noop["kind"], noop["status"], noop["result"]) == (
        "noop",
        "ok",
        {"noted": "saw nginx", "rule": "quiet"},
    )
    assert (log["kind"], log["status"]) == ("log", "ok")
    assert audit.action_params(noop["id"]) == {"note": "saw nginx"}


def test_rules_test_shows_a_registered_kind_rendered(tmp_path: Path) -> None:
    (tmp_path / "quiet.yaml").write_text(RULES)
    (step,) = run_offline(load_offline(tmp_path, TEST_KINDS), [EVENT])
    assert step.actions[0]["kind"] == "noop" and step.actions[0]["params"] == {"note": "saw nginx"}


def test_the_shipped_kinds_do_not_know_it_and_say_which_they_know(tmp_path: Path) -> None:
    path = tmp_path / "quiet.yaml"
    path.write_text(RULES)
    with pytest.raises(RuleError) as info:
        load_rule_set([path], kinds=KINDS)
    assert str(info.value) == (
        f"{path}:5: rules[0] (quiet).do[0]: an action needs exactly one of run, fire, webhook, exec, log"
    )


def test_a_kind_s_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n  - name: q\n    on: x\n    do:\n      - noop: ''\n      - noop: x\n        level: 1\n"
    )
    with pytest.raises(RuleError, match=r":5: rules\[0\] \(q\)\.do\[0\]: noop: expected text$"):
        load_rule_set([path], kinds=TEST_KINDS)
    path.write_text("rules:\n  - name: q\n    on: x\n    do:\n      - noop: x\n        level: 1\n")
    with pytest.raises(
        RuleError, match=r":5: rules\[0\] \(q\)\.do\[0\]: level: unknown key for a noop action$"
    ):
        load_rule_set([path], kinds=TEST_KINDS)


def test_a_registry_refuses_two_kinds_of_one_name_naming_both_modules() -> None:
    class Shadow(Noop):
        pass

    Shadow.__module__ = "plugins.shadow"
    with pytest.raises(
        ValueError, match=r"two action kinds are named 'noop': .*test_action_kinds and plugins"
    ):
        registry(Noop(), Shadow())

    class Timeout(Noop):
        name = "timeout"
        keys = ("timeout",)

    with pytest.raises(ValueError, match="not one of"):
        registry(Timeout())


def test_the_registry_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        KINDS["noop"] = Noop()  # type: ignore[index]


@pytest.mark.parametrize(
    "action, record",
    [
        (
            {"run": "service.restart", "args": ["{{ data.name }}"]},
            {
                "fun": "service.restart",
                "target": "web01",
                "target_type": "glob",
                "args": ["nginx"],
                "kwargs": {},
            },
        ),
        (
            {"run": "test.ping", "target": "web*", "batch": 2, "gate": {"on": "app/health"}},
            {
                "fun": "test.ping",
                "target": "web*",
                "target_type": "glob",
                "args": [],
                "kwargs": {},
                "batch": {"size": 2, "percent": False, "wait": 0.0, "failhard": False},
                "gate": {
                    "checks": [{"on": "app/health"}],
                    "target": None,
                    "target_type": "glob",
                    "allow_stale": False,
                },
            },
        ),
        ({"fire": "ops/{{ data.name }}", "data": {"n": 1}}, {"tag": "ops/nginx", "data": {"n": 1}}),
        (
            {"webhook": "https://hooks.example/{{ source }}"},
            {"url": "https://hooks.example/web01", "method": "POST", "headers": {}, "body": None},
        ),
        (
            {"exec": ["/bin/echo", "{{ data.name }}"]},
            {"argv": ["/bin/echo", "nginx"], "env": {}, "cwd": None},
        ),
        ({"log": "{{ data.name }} restarted"}, {"message": "nginx restarted", "level": "info"}),
    ],
)
def test_each_shipped_kind_records_its_rendered_parameters_and_reads_them_back(
    action: dict[str, Any], record: dict[str, Any], tmp_path: Path
) -> None:
    """The record is what the audit and the dead letters keep: the same keys as ever, the
    optional ones left out when the rule leaves them out."""
    path = tmp_path / "r.yaml"
    path.write_text(f"rules:\n  - name: r\n    on: x\n    do: [{action!r}]\n".replace("'", '"'))
    (spec,) = load_rule_set([path], kinds=KINDS).rules[0].do
    assert spec.render(EVENT) == record
    kind = KINDS[spec.kind]
    assert kind.load(record) == spec.params.render(EVENT)


def test_the_time_limit_of_a_try_is_the_kind_s_to_say() -> None:
    run = KINDS["run"]
    unbatched = run.load({"fun": "a.b", "target": "*", "target_type": "glob", "args": [], "kwargs": {}})
    batched = run.load(
        {**unbatched.record(), "batch": {"size": 1, "percent": False, "wait": 0, "failhard": False}}
    )
    assert run.time_limit(unbatched, 30.0) == 30.0 + RUN_GRACE
    assert run.time_limit(batched, 30.0) is None  # bounded by the job's own clock, batch by batch
    log = KINDS["log"]
    assert log.time_limit(log.load({"message": "m", "level": "info"}), 5.0) == 5.0
