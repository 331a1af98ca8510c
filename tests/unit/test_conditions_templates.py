"""The condition language and templates: what holds, why not, and that data is never evaluated."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactord.actions.kinds import KINDS
from reactord.protocol.events import Event
from reactord.protocol.tags import tag_matches
from reactord.reactor.conditions import MAX_MATCH_TEXT, Condition, Counter, compile_condition
from reactord.reactor.gatechecks import GateError, compile_checks
from reactord.reactor.index import TagIndex
from reactord.reactor.rules import RuleError, load_rules_text
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
        ({"data.name": {"gt": 4}}, 'data.name: expected gt 4, got "nginx"'),
        ({"data.nope": "x"}, 'data.nope: expected eq "x", but it is missing'),
        ({"data.ip": {"cidr": "192.168.0.0/16"}}, 'data.ip: expected cidr "192.168.0.0/16", got "10.1.2.3"'),
        ({"data.nested.k": "value"}, 'data.nested.k: expected eq "value", got "Value"'),
        ({"not": {"data.name": "nginx"}}, 'not: {"data.name": "nginx"} holds'),
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


# Patterns from rules meet text from the network: none may take more than linear time in it.
# The tests that would hang on a backtracking engine are guarded by a timeout.


def condition(spec: Any) -> Condition:
    return compile_condition(spec, "when", Counter())


def event_with(**data: Any) -> Event:
    return Event(id="1", tag="minion/web01/app/login", source="web01", time=0.0, data=data)


@pytest.mark.timeout(10)
def test_a_regex_that_backtracks_in_python_completes_on_hostile_text_and_does_not_match() -> None:
    redos = condition({"data.user": {"regex": "^(a+)+$"}})
    failure = redos.failure(event_with(user="a" * 4095 + "b"))
    assert failure is not None and failure.startswith('data.user: expected regex "^(a+)+$", got "aaa')
    assert not redos.holds(event_with(user="a" * 4095 + "b"))
    assert redos.holds(event_with(user="a" * MAX_MATCH_TEXT))
    assert not redos.holds(event_with(user="a" * (MAX_MATCH_TEXT + 1)))  # the text bound


RULE = """rules:
  - name: logins
    on: "minion/*/app/login"
    when:
      data.user: {regex: '%s'}
    do:
      - log: "{{ source }}"
"""


@pytest.mark.parametrize(
    "pattern, reason",
    [
        ("^(?=admin)", "invalid perl operator: (?="),  # lookahead
        ("(?<!x)root", "invalid perl operator: (?<!"),  # lookbehind
        (r"^(a)\1$", r"invalid escape sequence: \1"),  # backreference
        ("^a++$", "bad repetition operator: ++"),  # possessive
        ("^(?>a+)$", "invalid perl operator: (?>"),  # atomic group
        (r"^root\Z", r"invalid escape sequence: \Z"),  # Python's end anchor; RE2 says \z
    ],
)
def test_a_regex_that_needs_backtracking_is_refused_when_the_rules_load_with_file_line_and_key(
    pattern: str, reason: str
) -> None:
    with pytest.raises(RuleError) as refused:
        load_rules_text(RULE % pattern, "reactor.d/logins.yaml", Counter(), kinds=KINDS)
    error = refused.value
    assert (error.path, error.line, error.key) == ("reactor.d/logins.yaml", 4, "rules[0] (logins).when")
    assert error.message.startswith(f"when.data.user.regex: bad regular expression: {reason} (RE2 syntax")
    assert str(error).startswith("reactor.d/logins.yaml:4: rules[0] (logins).when: when.data.user.regex:")


def test_a_gate_refuses_a_regex_that_needs_backtracking() -> None:
    with pytest.raises(GateError, match=r"^gate\[0\]\.when\.data\.user\.regex: bad regular .* \(RE2 syntax"):
        compile_checks([{"on": "minion/*/app/login", "when": {"data.user": {"regex": "(a)\\1"}}}])


def test_a_run_actions_gate_refuses_it_when_the_rules_load() -> None:
    text = """rules:
  - name: deploy
    on: "ops/deploy"
    do:
      - run: test.ping
        gate: {on: "minion/*/app/login", when: {data.user: {regex: "(?=a)"}}}
"""
    with pytest.raises(RuleError, match=r"do\[0\]: gate: gate\[0\]\.when\.data\.user\.regex: bad regular"):
        load_rules_text(text, "reactor.d/deploy.yaml", Counter(), kinds=KINDS)


def test_ignore_case_folds_a_regex_and_its_text() -> None:
    curl = {"regex": "^CURL/[0-9]+"}
    assert condition({"data.agent": {**curl, "ignore_case": True}}).holds(event_with(agent="curl/8.1"))
    assert not condition({"data.agent": curl}).holds(event_with(agent="curl/8.1"))
    assert condition({"data.city": {"regex": "^ÉTÉ$", "ignore_case": True}}).holds(event_with(city="été"))
    assert condition({"data.agent": {"regex": "(?i)^CURL/"}}).holds(event_with(agent="curl/8.1"))


@pytest.mark.parametrize(
    "pattern, text, expected",
    [
        ("^ok$", "ok", True),
        ("^ok$", "ok\n", False),  # $ is the end of the text (Python's re also took "ok\n")
        ("(?m)^ok$", "ok\nnext", True),
        (r"^\d+$", "١٢", False),  # \d, \w, \s and \b are ASCII
        (r"^\pN+$", "١٢", True),  # Unicode classes are written \pN, \pL, ...
        ("^[[:alpha:]]+$", "abc", True),
        ("^(?P<user>[a-z]+)@", "root@host", True),
        ("^a.b$", "a\ud800b", True),  # a lone surrogate (JSON can carry one) is text, not an error
    ],
)
def test_re2_semantics_as_documented(pattern: str, text: str, expected: bool) -> None:
    assert condition({"data.x": {"regex": pattern}}).holds(event_with(x=text)) is expected


@pytest.mark.timeout(10)
def test_a_glob_with_many_stars_completes_on_hostile_text() -> None:
    glob = condition({"data.user": {"glob": "*a*a*a*a*a*a*a*a*b"}})
    assert not glob.holds(event_with(user="a" * 4095))
    assert glob.holds(event_with(user="a" * 4095 + "b"))
    many = condition({"data.user": {"glob": "*a" * 200 + "*b", "ignore_case": True}})
    assert not many.holds(event_with(user="A" * 4095 + "c"))


STARS = "minion/*/" + "*a" * 40 + "*b"  # in one segment: a backtracking regex tries O(n**40) splits
DEEP = "/".join(["**", "a"] * 40) + "/b"  # across segments: as many ways to spread 32 segments


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "pattern, tag, expected",
    [
        (STARS, "minion/web01/" + "a" * 200, False),
        (STARS, "minion/web01/" + "a" * 200 + "b", True),
        (STARS, "minion/web01/" + "a" * 39 + "b", False),
        (DEEP, "/".join(["a"] * 31) + "/c", False),
        (DEEP, "/".join(["a"] * 31) + "/b", False),  # 40 a segments are needed, 31 given
        ("/".join(["**", "a"] * 20) + "/b", "/".join(["a"] * 31) + "/b", True),
        ("/".join(["**", "*"] * 40) + "/b", "/".join(["a"] * 31) + "/c", False),
    ],
)
def test_tag_globs_with_many_stars_complete_on_hostile_tags(pattern: str, tag: str, expected: bool) -> None:
    assert tag_matches(pattern, tag) is expected
    assert bool(TagIndex([(pattern, "rule")]).candidates(tag)) is expected


def _reference_tag_match(pattern: str, tag: str) -> bool:
    """Tag globs by definition: ``**`` any number of segments, any other segment an fnmatch."""
    globs, segments = pattern.split("/"), tag.split("/")

    def match(i: int, j: int) -> bool:
        if i == len(globs):
            return j == len(segments)
        if globs[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(segments) + 1))
        return j < len(segments) and fnmatch.fnmatchcase(segments[j], globs[i]) and match(i + 1, j + 1)

    return match(0, 0)


_GLOB_SEGMENT = st.one_of(
    st.just("**"), st.just("*"), st.text("ab*?", min_size=1, max_size=5).filter(lambda s: "**" not in s)
)


@settings(max_examples=500, deadline=None)
@given(
    globs=st.lists(_GLOB_SEGMENT, min_size=1, max_size=6),
    segments=st.lists(st.text("ab", min_size=1, max_size=4), min_size=1, max_size=7),
)
def test_tag_globs_match_what_their_definition_says(globs: list[str], segments: list[str]) -> None:
    pattern, tag = "/".join(globs), "/".join(segments)
    assert tag_matches(pattern, tag) is _reference_tag_match(pattern, tag)


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


@pytest.mark.timeout(30)
def test_a_template_with_a_long_open_brace_is_refused_in_linear_time() -> None:
    """A rule author's ``{{`` followed by thousands of spaces and no ``}}`` took cubic time."""
    with pytest.raises(ValueError, match="unbalanced braces"):
        compile_template("{{" + " " * 20_000)
    assert compile_template("x {{  data.a  }} y").pieces == ("x ", ("data", "a"), " y")
