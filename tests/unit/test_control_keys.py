"""Key operations over a fake key store: which keys a glob names, dry runs, and lone or batch failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reactord.base.errors import ControlError, KeyStoreError
from reactord.control.keys_ops import KeyParts, key_accept, key_delete, key_finger, key_reject
from reactord.keystore import KeyEntry


class Keys:
    """A key store of ids by state; ``accept`` and the like move them (``KeyStoreError`` for
    an id in ``stuck``), and each call is noted."""

    def __init__(self, **states: list[str]) -> None:
        self.states = {"accepted": [], "pending": [], "rejected": [], "denied": [], **states}
        self.stuck: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def listing(self) -> dict[str, list[str]]:
        return {state: sorted(ids) for state, ids in self.states.items()}

    def entries(self, minion_id: str | None = None) -> list[KeyEntry]:
        return [
            KeyEntry(i, state, b"k" * 32)
            for state, ids in self.states.items()
            for i in ids
            if minion_id in (None, i)
        ]

    def _move(self, op: str, minion_id: str) -> None:
        self.calls.append((op, minion_id))
        if minion_id in self.stuck:
            raise KeyStoreError(f"no pending key for {minion_id!r}")

    def accept(self, minion_id: str) -> None:
        self._move("accept", minion_id)

    def reject(self, minion_id: str) -> None:
        self._move("reject", minion_id)

    def delete(self, minion_id: str) -> None:
        self._move("delete", minion_id)


def call(op: Any, keys: Keys, **args: Any) -> Any:
    return asyncio.run(op(KeyParts(keys=keys, decisions=keys, master_finger="ab:cd"), args))


def test_a_glob_names_pending_keys_only_unless_asked_for_more() -> None:
    keys = Keys(pending=["web01", "db01"], rejected=["web02"], accepted=["web03"])
    assert call(key_accept, keys, match="web*") == {"accepted": ["web01"]}
    assert call(key_accept, keys, match="web*", include_rejected=True) == {"accepted": ["web01", "web02"]}
    assert call(key_reject, keys, match="web*", include_accepted=True) == {"rejected": ["web01", "web03"]}
    assert call(key_delete, keys, match="web*", dry_run=True) == {"matched": ["web01", "web02", "web03"]}
    assert ("delete", "web02") not in keys.calls


def test_an_exact_id_is_taken_whatever_its_state_and_all_means_every_pending_key() -> None:
    keys = Keys(pending=["a", "b"], accepted=["c"])
    assert call(key_reject, keys, id="c") == {"rejected": ["c"]}
    assert call(key_accept, keys, all=True) == {"accepted": ["a", "b"]}
    assert call(key_accept, keys, ids=["b", "a", "b"], dry_run=True) == {"matched": ["b", "a"]}


def test_a_lone_key_that_cannot_change_is_an_error_among_several_it_is_left_out() -> None:
    keys = Keys(pending=["web01", "web02"])
    keys.stuck = {"web01"}
    with pytest.raises(ControlError, match="no pending key for 'web01'"):
        call(key_accept, keys, id="web01")
    assert call(key_accept, keys, match="web*") == {"accepted": ["web02"]}


@pytest.mark.parametrize(
    "args, message",
    [
        ({"ids": ["a", 1]}, "argument 'ids' must be a list of ids"),
        ({"ids": "a"}, "argument 'ids' must be list"),
        ({}, "missing argument 'id'"),
    ],
)
def test_the_keys_named_are_checked(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ControlError, match=message) as caught:
        call(key_delete, Keys(), **args)
    assert caught.value.code == "bad_request"


def test_fingerprints_of_the_master_and_the_keys_asked_for() -> None:
    keys = Keys(pending=["web01"], accepted=["db01"])
    answer = call(key_finger, keys, id="web01")
    assert answer["master"] == "ab:cd"
    assert [(m["id"], m["state"]) for m in answer["minions"]] == [("web01", "pending")]
    with pytest.raises(ControlError, match="no key for 'web09'"):
        call(key_finger, keys, id="web09")
