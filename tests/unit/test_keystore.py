"""Key states: how hellos and operator actions move keys, on disk and in memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reactord.base.errors import KeyStoreError
from reactord.keystore import ACCEPTED, DENIED, MAX_DENIED_PER_ID, PENDING, REJECTED, KeyStore


def key(n: int) -> bytes:
    return bytes([n]) * 32


def test_new_key_is_pending_then_accepted_and_survives_a_reload(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    assert store.register("web01", key(1)) == PENDING
    assert store.accepted_id(key(1)) is None
    store.accept("web01")
    assert store.accepted_id(key(1)) == "web01"
    assert store.register("web01", key(1)) == ACCEPTED
    again = KeyStore(tmp_path)
    assert again.accepted_id(key(1)) == "web01"
    assert again.listing() == {ACCEPTED: ["web01"], PENDING: [], REJECTED: [], DENIED: []}
    path = tmp_path / "minions" / "accepted" / "web01"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "minions").st_mode & 0o777 == 0o700


def test_second_key_for_a_known_id_is_denied_and_never_accepted(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.register("web01", key(1))
    store.accept("web01")
    assert store.register("web01", key(2)) == DENIED
    assert store.lookup(key(2)).state == DENIED  # type: ignore[union-attr]
    with pytest.raises(KeyStoreError):
        store.accept("nobody")
    assert store.accepted_key("web01") == key(1)
    for n in range(3, 3 + MAX_DENIED_PER_ID + 5):
        assert store.register("web01", key(n)) == DENIED
    assert len(store.entries("web01")) == 1 + MAX_DENIED_PER_ID


def test_a_key_claiming_another_id_is_denied_without_being_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.register("web01", key(1))
    assert store.register("web02", key(1)) == DENIED
    assert store.state_of("web02") is None


def test_reject_and_delete(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.register("web01", key(1))
    store.accept("web01")
    store.reject("web01")
    assert store.accepted_id(key(1)) is None
    assert store.register("web01", key(1)) == REJECTED
    store.delete("web01")
    assert store.lookup(key(1)) is None
    assert store.register("web01", key(1)) == PENDING
    with pytest.raises(KeyStoreError):
        store.delete("ghost")


def test_auto_accept_and_pending_bound(tmp_path: Path) -> None:
    assert KeyStore(tmp_path / "a", auto_accept=True).register("web01", key(1)) == ACCEPTED
    store = KeyStore(tmp_path / "b", max_pending=2)
    assert store.register("a", key(1)) == PENDING
    assert store.register("b", key(2)) == PENDING
    assert store.register("c", key(3)) == REJECTED
    assert store.state_of("c") is None
