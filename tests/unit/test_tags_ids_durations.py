"""Tags and tag globs, sortable ids, and durations."""

from __future__ import annotations

import time

import pytest

from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import TagError
from reactord.protocol.ids import id_time, is_id, new_id
from reactord.protocol.tags import in_minion_namespace, localize, tag_matches, validate_tag


@pytest.mark.parametrize(
    "pattern, tag, expected",
    [
        ("minion/*/beacon/load", "minion/web01/beacon/load", True),
        ("minion/*/beacon/load", "minion/web01/x/beacon/load", False),
        ("minion/**", "minion/web01/beacon/load", True),
        ("minion/**/load", "minion/web01/beacon/load", True),
        ("minion/**/load", "minion/load", True),
        ("**/load", "minion/web01/beacon/load", True),
        ("**", "a/b", True),
        ("minion/web*/beacon/*", "minion/web01/beacon/disk", True),
        ("minion/web*/beacon/*", "minion/db01/beacon/disk", False),
        ("minion/web0?/x", "minion/web01/x", True),
        ("reactor/presence/*/up", "reactor/presence/web01/up", True),
        ("a.b", "aXb", False),
    ],
)
def test_tag_globs(pattern: str, tag: str, expected: bool) -> None:
    assert tag_matches(pattern, tag) is expected


@pytest.mark.parametrize("tag", ["", "a//b", "/a", "a/", "a b", "a/{{x}}", "x" * 300, "a/" * 40 + "a", 7])
def test_malformed_tags_are_refused(tag: object) -> None:
    with pytest.raises(TagError):
        validate_tag(tag)


def test_minion_namespace() -> None:
    assert localize("web01", "app/deployed") == "minion/web01/app/deployed"
    assert localize("web01", "minion/web01/app/deployed") == "minion/web01/app/deployed"
    assert localize("web01", "reactor/key/x/accepted") == "minion/web01/reactor/key/x/accepted"
    assert localize("web01", "minion/web02/x") == "minion/web01/minion/web02/x"
    assert in_minion_namespace("web01", "minion/web01/x")
    assert not in_minion_namespace("web01", "minion/web011/x")
    assert not in_minion_namespace("web01", "minion/web01/")


def test_ids_are_unique_sortable_and_carry_their_time() -> None:
    later = time.time() + 86400  # ids never go back in time within a process: use a later clock
    ids = [new_id(later) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(is_id(i) for i in ids)
    assert id_time(ids[0]) == pytest.approx(later, abs=0.001)
    assert new_id(later + 1) > ids[-1]
    assert new_id(later - 3600) > ids[-1]  # an earlier clock still sorts after


@pytest.mark.parametrize(
    "text, seconds",
    [(30, 30.0), (1.5, 1.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1s", True, None, "5 weeks"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
