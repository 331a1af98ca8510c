"""The condition language and templates: what holds, why not, and that data is never evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from reactord.protocol.events import Event
from reactord.reactor.conditions import Counter, compile_condition
from reactord.reactor.templates import TemplateError, compile_template, compile_value, render_value

EVENT = Event(
    id="01J",
    tag="minion/web01/beacon/service",
    source="web01",
    time=100.0,
    data={
        "name": "nginx",
        "running": False,
        "load": 3.5,
        "ip": "10.1.2.3",
        "tags": ["a", "b"],
        "nested": {"k": "Value"},
        "count": 7,
        "text": "{{ 7*7 }}",
    },
)


def holds(spec: Any) -> str | None:
    return compile_condition(spec, "when", Counter()).failure(EVENT)


@pytest.mark.parametrize(
    "spec",
    [
        {"data.name": "nginx"},
        {"data.running": False},
        {"data.name": ["apache", "nginx"]},
        {"data.load": {"gt": 3, "lt": 4}},
        {"data.load": {"gte": 3.5, "lte": 3.5}},
        {"data.count": {"ne": 8}},
        {"data.name": {"in": ["nginx"]}},
        {"data.name": {"not_in": ["apache"]}},
        {"data.tags": {"contains": "b"}},
        {"data.name": {"contains": "gin"}},
        {"data.name": {"prefix": "ng", "suffix": "nx"}},
        {"source": {"glob": "web*"}},
        {"tag": {"regex": "beacon/serv"}},
        {"data.ip": {"cidr": "10.0.0.0/8"}},
        {"data.nested.k": {"eq": "value", "ignore_case": True}},
        {"data.missing": {"exists": False}},
        {"data.tags.0": "a"},
        {"any": [{"data.name": "apache"}, {"data.count": 7}]},
        {"all": [{"data.name": "nginx"}, {"source": "web01"}]},
        {"not": {"data.name": "apache"}},
    ],
)
def test_conditions_that_hold(spec: Any) -> None:
    assert holds(spec) is None


@pytest.mark.parametrize(
    "spec, reason",
    [
        ({"data.running": True}, "data.running: expected eq true, got false"),
        ({"data.running": 0}, "data.running: expected eq 0, got false"),
        ({"data.load": {"gt": 4}}, "data.load: expected gt 4, got 3.5"),
        ({"data.name": {"gt": 4}}, "data.name: expected gt 4, got 'nginx'"),
        ({"data.nope": "x"}, "data.nope: expected eq 'x', but it is missing"),
        ({"data.ip": {"cidr": "192.168.0.0/16"}}, "data.ip: expected cidr '192.168.0.0/16', got '10.1.2.3'"),
        ({"data.nested.k": "value"}, "data.nested.k: expected eq 'value', got 'Value'"),
        ({"not": {"data.name": "nginx"}}, "not: {'data.name': 'nginx'} holds"),
        ({"any": [{"data.count": 1}, {"data.count": 2}]}, "none of any"),
    ],
)
def test_conditions_that_fail_say_why_with_the_actual_value(spec: Any, reason: str) -> None:
    failure = holds(spec)
    assert failure is not None and reason in failure


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"data.x": {"bigger": 1}}, "unknown operator 'bigger'"),
        ({"data.x": {"regex": "("}}, "bad regular expression"),
        ({"data.x": {"in": "abc"}}, "expected a list"),
        ({"data.x": {"cidr": "nonsense"}}, "does not appear to be an IPv4 or IPv6 network"),
        ({"payload.x": 1}, "it must start with one of"),
        ({"source.x": 1}, "only data has fields"),
        ({"any": []}, "non-empty list"),
        ("data.x == 1", "expected a mapping"),
    ],
)
def test_bad_conditions_are_refused_at_load(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_condition(spec, "when", Counter())


def test_regex_is_not_run_on_huge_text() -> None:
    event = Event(id="1", tag="t", source="s", time=0.0, data={"x": "a" * 10_000})
    assert compile_condition({"data.x": {"regex": "a"}}, "when", Counter()).failure(event) is not None


def test_whole_value_templates_keep_their_type_and_strings_interpolate() -> None:
    assert render_value(compile_value("{{ data.count }}"), EVENT) == 7
    assert render_value(compile_value("{{data.running}}"), EVENT) is False
    assert render_value(compile_value("{{ data.tags }}"), EVENT) == ["a", "b"]
    assert (
        render_value(compile_value("host {{ source }} load {{ data.load }}"), EVENT) == "host web01 load 3.5"
    )
    assert render_value(compile_value({"k": ["{{ tag }}", 1]}), EVENT) == {
        "k": ["minion/web01/beacon/service", 1]
    }


def test_event_data_is_never_evaluated_or_rendered_again() -> None:
    assert render_value(compile_value("{{ data.text }}"), EVENT) == "{{ 7*7 }}"
    assert render_value(compile_value("x={{ data.text }}"), EVENT) == "x={{ 7*7 }}"


@pytest.mark.parametrize(
    "text", ["{{ 7*7 }}", "{{ data.x", "a }} b", "{{ __import__('os') }}", "{{ data..x }}"]
)
def test_templates_that_are_not_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        compile_template(text)


def test_missing_values_are_an_explicit_error() -> None:
    with pytest.raises(TemplateError, match=r"data\.nope"):
        render_value(compile_value("{{ data.nope }}"), EVENT)
