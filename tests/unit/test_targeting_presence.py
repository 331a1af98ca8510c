"""Targeting expressions, and the presence state machine with an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reactord.config import PresenceConfig
from reactord.errors import TargetError
from reactord.presence import PresenceTracker
from reactord.store.database import Database
from reactord.store.minions import MinionRegistry
from reactord.store.schema import MIGRATIONS
from reactord.targeting import resolve

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
    ],
)
def test_targets(target: str, kind: str, expected: list[str]) -> None:
    assert resolve(target, kind, GRAINS.keys(), GRAINS) == expected


@pytest.mark.parametrize("target, kind", [("novalue", "grain"), (",", "list"), ("*", "compound")])
def test_bad_targets(target: str, kind: str) -> None:
    with pytest.raises(TargetError):
        resolve(target, kind, GRAINS.keys(), GRAINS)


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
