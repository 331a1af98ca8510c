"""The contracts of the action log (intents, dead letters), the key store, the minion
registry and ownership: ordering, states, a restart."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reactord.base.errors import KeyStoreError
from reactord.protocol.ids import id_floor
from reactord.store.audit import DeadLetter, action_row
from tests.contracts.conftest import Stores

_made = iter(range(1, 1 << 40))


def id_at(at: float, count: int = 1) -> list[str]:
    """Ids of events received at ``at`` (ids sort by arrival time; these are made up for it)."""
    return [id_floor(at)[:10] + f"{next(_made):016d}" for _ in range(count)]


def test_action_intents_are_written_with_their_decision_and_resumed_oldest_first(
    backend: Callable[[], Stores],
) -> None:
    stores = backend()
    a1, a2 = id_at(1.0)[0], id_at(2.0)[0]
    rows = [
        action_row(a2, "E2", "r", 0, "log", "log b", 2.0, None, "k2"),
        action_row(a1, "E1", "r", 0, "log", "log a", 1.0, None, "k1"),
    ]
    writes = stores.actions.intent_writes(rows, [("E1", "r", True, None, 1.0, None)])
    stores.events.append([], {}, None, None, writes)
    stores.actions.update_action(a2, status="ok", finished=3.0)
    stores.actions.flush()
    stores.close()
    again = backend().actions
    assert [a["id"] for a in again.unfinished()] == [a1]  # ok actions are finished
    assert again.action_key(a1) == "k1"
    assert [a["status"] for a in again.actions_for("E2")] == ["ok"]
    assert [d["rule"] for d in again.decisions("E1")] == ["r"]


def test_an_action_written_alone_is_pending_with_its_params(backend: Callable[[], Stores]) -> None:
    stores = backend()
    action = id_at(5.0)[0]
    stores.actions.add_action(action, "E9", "r", 0, "log", "retry of log x", 5.0, {"message": "x"}, None)
    stores.actions.flush()
    stores.close()
    again = backend().actions
    assert [(a["id"], a["status"]) for a in again.unfinished()] == [(action, "pending")]
    assert again.action_params(action) == {"message": "x"}


def test_dead_letters_open_then_resolved(backend: Callable[[], Stores]) -> None:
    stores = backend()
    letter = DeadLetter(
        id=id_at(1.0)[0],
        action_id="A",
        event_id="E",
        rule="r",
        kind="log",
        label="log x",
        params={"m": 1},
        timeout=5.0,
        retry={"attempts": 1},
        error="boom",
        attempts=1,
        created=1.0,
        status="open",
        updated=1.0,
    )
    stores.actions.add_dead(letter)
    assert stores.actions.count_dead() == 1 and stores.actions.dead_letter(letter.id) == letter
    stores.actions.update_dead(letter.id, status="resolved", error="", attempts=2, now=2.0)
    stores.actions.flush()
    stores.close()
    again = backend().actions
    assert again.dead_letters("open") == [] and again.count_dead() == 0
    assert [d.status for d in again.dead_letters(None)] == ["resolved"]


def test_keys_move_between_states_one_accepted_key_per_id_and_survive_a_restart(
    backend: Callable[[], Stores],
) -> None:
    keys = backend().keys
    assert keys.register("web01", b"K1" * 16) == "pending"
    assert keys.register("web01", b"K2" * 16) == "denied"  # a second key for the id
    keys.accept("web01")
    assert keys.accepted_key("web01") == b"K1" * 16 and keys.accepted_id(b"K1" * 16) == "web01"
    with pytest.raises(KeyStoreError):
        keys.accept("nobody")
    assert keys.register("web02", b"K3" * 16) == "pending"
    keys.reject("web02")
    reopened = backend().keys
    assert reopened.listing()["accepted"] == ["web01"] and reopened.listing()["rejected"] == ["web02"]
    assert reopened.state_of("web02") == "rejected"
    reopened.delete("web02")
    assert reopened.state_of("web02") is None


def test_presence_records_survive_a_restart(backend: Callable[[], Stores]) -> None:
    stores = backend()
    stores.presence.upsert_hello("web01", {"os": "Linux"}, "1.0", ["test.ping"], now=1.0)
    stores.presence.touch("web01", 5.0)
    stores.presence.set_presence("web01", "up")
    stores.presence.flush()
    stores.close()
    record = backend().presence.get("web01")
    assert record is not None and record.grains == {"os": "Linux"} and record.presence == "up"
    assert record.last_seen == 5.0 and record.first_seen == 1.0


def test_the_embedded_master_owns_every_source(backend: Callable[[], Stores]) -> None:
    ownership = backend().ownership
    assert all(ownership.owns(s) for s in ("web01", "webhook/gh", "master", "cli"))
    assert ownership.owner("web01") == ownership.member
