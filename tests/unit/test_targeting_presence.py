"""Targeting expressions, and the presence state machine with an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reactord.base.config import PresenceConfig
from reactord.base.errors import TargetError
from reactord.base.targeting import check_nodegroups, compile_target, escape_value, resolve
from reactord.presence import PresenceTracker
from reactord.store.database import Database
from reactord.store.minions import MinionRegistry
from reactord.store.schema import MIGRATIONS

GRAINS = {
    "web01": {"os": "Linux", "roles": ["web", "edge"], "dc": {"name": "par1"}},
    "web02": {"os": "Linux", "roles": ["web"]},
    "db01": {"os": "FreeBSD", "roles": ["db"], "ssd": True},
}


@pytest.mark.parametrize(
    "target, kind, expected",
    [
        ("*", "glob", ["db01", "web01", "web02"]),
        ("web*", "glob", ["web01", "web02"]),
        ("web01,db01,ghost", "list", ["db01", "web01"]),
        ("os:Linux", "grain", ["web01", "web02"]),
        ("roles:edge", "grain", ["web01"]),
        ("roles:w*", "grain", ["web01", "web02"]),
        ("dc:name:par*", "grain", ["web01"]),
        ("ssd:true", "grain", ["db01"]),
        ("^web0[12]$", "pcre", ["web01", "web02"]),
        ("01", "pcre", ["db01", "web01"]),
        ("os:^(Linux|FreeBSD)$", "grain_pcre", ["db01", "web01", "web02"]),
        ("roles:^e", "grain_pcre", ["web01"]),
        ("*", "compound", ["db01", "web01", "web02"]),
        ("G@roles:web and web* and not L@web02", "compound", ["web01"]),
        ("G@os:Linux or db*", "compound", ["db01", "web01", "web02"]),
        ("not G@os:Linux", "compound", ["db01"]),
        ("web01 or db01 and G@os:Linux", "compound", ["web01"]),  # and binds tighter than or
        ("(web01 or db01) and G@os:FreeBSD", "compound", ["db01"]),
        ("( web01 or db01 ) and not ( G@os:Linux )", "compound", ["db01"]),
        ("E@web0(1|2) and not not P@roles:^edge$", "compound", ["web01"]),
        ("N@linux and not web02", "compound", ["web01"]),
        ("linux", "nodegroup", ["web01", "web02"]),
        ("pair", "nodegroup", ["db01", "web02"]),
        ("nested", "nodegroup", ["web02"]),
        ("salty", "nodegroup", ["db01", "web01"]),
    ],
)
def test_targets(target: str, kind: str, expected: list[str]) -> None:
    groups = check_nodegroups(NODEGROUPS)
    assert resolve(target, kind, GRAINS.keys(), GRAINS, groups) == expected


NODEGROUPS = {
    "linux": "G@os:Linux",
    "pair": ["web02", "db01"],  # a list of ids
    "nested": "N@linux and N@pair",
    "salty": ["G@os:FreeBSD", "or", "web01"],  # Salt's compound expression in pieces
}


@pytest.mark.parametrize(
    "target, kind, message",
    [
        ("novalue", "grain", "key:value"),
        (",", "list", "empty list"),
        ("", "glob", "empty"),
        ("web01 web02", "glob", "one word"),
        ("a and", "compound", "ends where a term is expected"),
        ("(a or b", "compound", "without its ')'"),
        ("a b", "compound", "unexpected 'b'"),
        ("a or or b", "compound", "unexpected 'or'"),
        ("S@10.0.0.0/8", "compound", "subnet"),
        ("I@role:web", "compound", "pillar"),
        ("Q@x", "compound", "unknown target prefix"),
        ("G@", "compound", "nothing after"),
        ("E@(a", "compound", "regular expression"),
        ("(a+)+\\1", "pcre", "regular expression"),
        ("nosuch", "nodegroup", "no nodegroup 'nosuch'"),
        ("N@nosuch or web01", "compound", "no nodegroup"),
        ("web01", "regex", "unknown target type"),
        ("( " * 40 + "a" + " )" * 40, "compound", "nested"),
        (" or ".join(["a"] * 300), "compound", "terms"),
    ],
)
def test_bad_targets(target: str, kind: str, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", "\\(").replace(")", "\\)")):
        compile_target(target, kind, check_nodegroups(NODEGROUPS))


def test_nodegroups_are_checked_when_read() -> None:
    with pytest.raises(TargetError, match="cycle: a -> b -> a"):
        check_nodegroups({"a": "N@b", "b": "N@a"})
    with pytest.raises(TargetError, match="no nodegroup 'c'"):
        check_nodegroups({"a": "N@c"})
    with pytest.raises(TargetError, match="bad nodegroup name"):
        check_nodegroups({"a b": "web*"})
    with pytest.raises(TargetError, match="expected a compound expression"):
        check_nodegroups({"a": 3})


@pytest.mark.parametrize(
    "value, kind, expected",
    [
        ("web01", "glob", ["web01"]),
        ("web*", "glob", []),  # the star from an event is a literal star, never a wildcard
        ("w?b01", "compound", []),
        ("web0.", "pcre", []),
    ],
)
def test_values_from_events_match_literally(value: str, kind: str, expected: list[str]) -> None:
    assert resolve(escape_value(value, kind), kind, GRAINS.keys(), GRAINS) == expected


@pytest.mark.parametrize("value", ["web01 or *", "(web01)", "web01,db01", "web01\tor\t*"])
def test_values_from_events_cannot_change_the_shape(value: str) -> None:
    with pytest.raises(TargetError, match="shape"):
        escape_value(value, "compound")


def test_presence_transitions_emit_events_and_survive_a_restart(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    config = PresenceConfig(heartbeat=1.0, suspect_after=5.0, down_after=10.0)
    db = Database(tmp_path / "m.db", MIGRATIONS)
    registry = MinionRegistry(db)
    registry.upsert_hello("web01", {}, "1", [], now=100.0)
    tracker = PresenceTracker(registry, config, lambda t, d: events.append((t, d)), started=100.0)
    tracker.seen("web01", 100.0)
    tracker.tick(104.0)
    tracker.tick(106.0)
    tracker.tick(111.0)
    tracker.seen("web01", 112.0)
    assert [t for t, _ in events] == [
        "reactor/presence/web01/up",
        "reactor/presence/web01/suspect",
        "reactor/presence/web01/down",
        "reactor/presence/web01/up",
    ]
    assert events[1][1] == {"id": "web01", "from": "up", "to": "suspect"}
    db.close()

    # A master restart long after: the minion keeps "up" for a grace period, then goes down.
    db = Database(tmp_path / "m.db", MIGRATIONS)
    registry = MinionRegistry(db)
    assert registry.get("web01").presence == "up"  # type: ignore[union-attr]
    events.clear()
    tracker = PresenceTracker(registry, config, lambda t, d: events.append((t, d)), started=1000.0)
    tracker.tick(1001.0)
    assert events == []
    tracker.tick(1006.0)
    tracker.tick(1011.0)
    assert [t for t, _ in events] == ["reactor/presence/web01/suspect", "reactor/presence/web01/down"]
