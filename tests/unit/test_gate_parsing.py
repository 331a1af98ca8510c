"""The gate's command-line language, and the fleet's gate verdicts on rows."""

from __future__ import annotations

import click
import pytest

from reactord.base.checks import CheckSyntax, parse_condition
from reactord.cli.fleet import parse_checks
from reactord.reactor.gatechecks import GateError, compile_checks


@pytest.mark.parametrize(
    "text, expected",
    [
        ("data.load1 < 2", {"data.load1": {"lt": 2}}),
        ("data.load1<=2.5", {"data.load1": {"lte": 2.5}}),
        ("data.ok == true", {"data.ok": {"eq": True}}),
        ("data.state != failed", {"data.state": {"ne": "failed"}}),
        ("data.name in [nginx, apache]", {"data.name": {"in": ["nginx", "apache"]}}),
        ("data.name not in [x]", {"data.name": {"not_in": ["x"]}}),
        ("data.tags contains prod", {"data.tags": {"contains": "prod"}}),
        ("data.version =~ ^1\\.", {"data.version": {"regex": "^1\\."}}),
        ("data.x exists", {"data.x": {"exists": True}}),
        ("data.x missing", {"data.x": {"exists": False}}),
        (
            "{data.load1: {lt: 2}, source: {glob: 'web*'}}",
            {"data.load1": {"lt": 2}, "source": {"glob": "web*"}},
        ),
    ],
)
def test_short_and_mapping_conditions(text: str, expected: dict[str, object]) -> None:
    assert parse_condition(text) == expected


def test_tag_globs_start_groups() -> None:
    checks = parse_checks(
        (
            "minion/*/beacon/load",
            "data.load1 < 2",
            "minion/*/beacon/disk/*",
            "data.percent < 90",
            "minion/*/beacon/heartbeat",
        )
    )
    assert checks == [
        {"on": "minion/*/beacon/load", "when": {"data.load1": {"lt": 2}}},
        {"on": "minion/*/beacon/disk/*", "when": {"data.percent": {"lt": 90}}},
        {"on": "minion/*/beacon/heartbeat"},
    ]
    compile_checks(checks)


def test_conditions_on_one_path_all_hold_and_values_are_yaml_1_2() -> None:
    checks = parse_checks(("minion/*/beacon/load", "data.load1 < 1", "data.load1 > 0"))
    assert checks == [
        {
            "on": "minion/*/beacon/load",
            "when": {"all": [{"data.load1": {"lt": 1}}, {"data.load1": {"gt": 0}}]},
        }
    ]
    assert parse_condition("data.mode == on") == {"data.mode": {"eq": "on"}}
    assert parse_condition("data.day == 2026-11-26") == {"data.day": {"eq": "2026-11-26"}}
    assert parse_checks(("{on: a/b, when: {data.q: 1}}",)) == [{"on": "a/b", "when": {"data.q": 1}}]


@pytest.mark.parametrize(
    "words", [("data.x < 2",), ("minion/*/x", "data.x ?? 2"), (), ("x/y", "data.x == ["), ("x/y", "load<2")]
)
def test_bad_gate_words(words: tuple[str, ...]) -> None:
    with pytest.raises(click.ClickException):
        parse_checks(words)


def test_bad_checks_are_refused_by_the_master_side_too() -> None:
    for groups in ([], [{"on": "a//b"}], [{"on": "x", "when": {"data.x": {"nope": 1}}}], [{"when": {}}]):
        with pytest.raises(GateError):
            compile_checks(groups)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["data.x <<< 2", "data.x == =3", "data.x >= >1", "data.x != !y", "data.x =~ ~a"]
)
def test_an_operator_followed_by_operator_characters_is_a_typo(text: str) -> None:
    with pytest.raises(CheckSyntax, match="is not an operator"):
        parse_condition(text)


@pytest.mark.parametrize(
    "text, expected",
    [("data.x < -2", {"data.x": {"lt": -2}}), ("data.x == '<b>'", {"data.x": {"eq": "<b>"}})],
)
def test_values_that_only_look_like_operators_stay_values(text: str, expected: dict[str, object]) -> None:
    assert parse_condition(text) == expected
