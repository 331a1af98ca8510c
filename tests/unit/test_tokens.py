"""API tokens (reactord.store.tokens): only a hash is kept; a token is valid until revoked or
expired; roles include the ones below them; anything else presented is refused with why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reactord.base.errors import StoreError
from reactord.store.database import Database
from reactord.store.schema import MIGRATIONS
from reactord.store.tokens import TokenStore


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(Database(tmp_path / "master.db", MIGRATIONS))


def test_a_token_is_checked_against_its_hash_and_never_stored(store: TokenStore, tmp_path: Path) -> None:
    token, secret = store.create("operate", "ci", now=100.0)
    assert secret.startswith(f"rdt_{token.id}_")
    checked, why = store.check(secret, now=101.0)
    assert checked == token and why == ""
    store.db.close()
    with sqlite3.connect(tmp_path / "master.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump and secret.split("_")[2] not in dump


def test_wrong_revoked_expired_and_malformed_tokens_are_refused_with_the_reason(store: TokenStore) -> None:
    token, secret = store.create("read", "ops", now=100.0, expires=200.0)
    forged = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    assert store.check(forged, now=150.0) == (None, f"wrong secret for token {token.id}")
    assert store.check("rdt_aaaaaaaaaa_" + "a" * 52, now=150.0) == (None, "unknown token")
    for junk in ("", "Bearer x", secret + "x", secret.upper(), "rdt_" + "a" * 70):
        assert store.check(junk, now=150.0)[0] is None, junk
    assert store.check(secret, now=200.0) == (None, f"token {token.id} (ops) has expired")
    other, other_secret = store.create("admin", "root", now=100.0)
    store.revoke("root", now=120.0)
    assert store.check(other_secret, now=121.0) == (None, f"token {other.id} (root) is revoked")


def test_roles_include_the_ones_below_and_bad_requests_are_refused(store: TokenStore) -> None:
    read, _ = store.create("read", "a", now=1.0)
    operate, _ = store.create("operate", "b", now=1.0)
    admin, _ = store.create("admin", "c", now=1.0)
    assert [read.allows(r) for r in ("read", "operate", "admin")] == [True, False, False]
    assert [operate.allows(r) for r in ("read", "operate", "admin")] == [True, True, False]
    assert [admin.allows(r) for r in ("read", "operate", "admin")] == [True, True, True]
    for role, name, expires in (("root", "x", None), ("read", "bad name", None), ("read", "x", 0.5)):
        with pytest.raises(StoreError):
            store.create(role, name, now=1.0, expires=expires)
    store.create("read", "a", now=1.0)
    with pytest.raises(StoreError, match="2 tokens are named 'a': use the id"):
        store.revoke("a", now=2.0)
    assert store.revoke(read.id, now=2.0).revoked == 2.0
