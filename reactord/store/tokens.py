"""API tokens: who may use the HTTP API and the dashboard, and with which role.

A token is ``rdt_<id>_<secret>``: ``id`` (10 characters) names its row, ``secret`` (32 random
bytes, base32) is known only to its holder; the master keeps the SHA-256 of the whole token
(a random 256-bit secret needs no slow hash) and compares in constant time. Roles, each
including the ones before it: ``read`` (look), ``operate`` (fire events, run functions,
retry dead letters), ``admin`` (keys, rule reloads). Tokens themselves are made and revoked
from the CLI only (the control socket), never through the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any

from reactord.base.errors import StoreError
from reactord.store.database import Database

ROLES = ("read", "operate", "admin")
_TOKEN = re.compile(r"rdt_([a-z2-7]{10})_([a-z2-7]{52})")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_COLUMNS = "id, name, role, created, expires, revoked, last_used"


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    role: str
    created: float
    expires: float | None
    revoked: float | None
    last_used: float | None

    def allows(self, role: str) -> bool:
        """Whether this token's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
            "last_used": self.last_used,
        }


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, role: str, name: str, now: float, expires: float | None = None) -> tuple[Token, str]:
        """A new token: its record, and the token itself (shown once, never stored)."""
        if role not in ROLES:
            raise StoreError(f"no role {role!r}: one of {', '.join(ROLES)}")
        if not _NAME.fullmatch(name):
            raise StoreError(f"a token name is 1-64 letters, digits and _.@- (not {name!r})")
        if expires is not None and expires <= now:
            raise StoreError("a token must expire in the future")
        token_id = _b32(os.urandom(10))[:10]
        secret = f"rdt_{token_id}_{_b32(os.urandom(32))}"
        with self.db.writing() as conn:
            conn.execute(
                "INSERT INTO api_tokens (id, name, role, hash, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, name, role, _hash(secret), now, expires),
            )
        return Token(token_id, name, role, now, expires, None, None), secret

    def listing(self) -> list[Token]:
        rows = self.db.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created, id").fetchall()
        return [Token(*row) for row in rows]

    def revoke(self, token_id: str, now: float) -> Token:
        """Revoke a token by its id (or its name, when one token has it)."""
        found = [t for t in self.listing() if token_id in (t.id, t.name)]
        if len(found) != 1:
            raise StoreError(
                f"no token {token_id!r}"
                if not found
                else f"{len(found)} tokens are named {token_id!r}: use the id"
            )
        token = found[0]
        if token.revoked is None:
            with self.db.writing() as conn:
                conn.execute("UPDATE api_tokens SET revoked=? WHERE id=?", (now, token.id))
        return self.get(token.id) or token

    def get(self, token_id: str) -> Token | None:
        row = self.db.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id=?", (token_id,)).fetchone()
        return Token(*row) if row else None

    def check(self, presented: str, now: float) -> tuple[Token | None, str]:
        """The token ``presented`` names, if it is valid now; else None and why (for the log,
        never for the client)."""
        match = _TOKEN.fullmatch(presented)
        if match is None:
            return None, "not a reactord token"
        row = self.db.conn.execute(
            f"SELECT {_COLUMNS}, hash FROM api_tokens WHERE id=?", (match[1],)
        ).fetchone()
        if row is None:
            return None, "unknown token"
        token, stored = Token(*row[:-1]), row[-1]
        if not hmac.compare_digest(stored, _hash(presented)):
            return None, f"wrong secret for token {token.id}"
        return _current(token, now)

    def valid(self, token_id: str, now: float) -> tuple[Token | None, str]:
        """The token ``token_id`` if it is still valid now (a dashboard login's, checked again
        at every request: revoking a token ends its logins); else None and why."""
        token = self.get(token_id)
        if token is None:
            return None, f"token {token_id} no longer exists"
        return _current(token, now)

    def used(self, token_id: str, now: float) -> None:
        with self.db.writing() as conn:
            conn.execute("UPDATE api_tokens SET last_used=? WHERE id=?", (now, token_id))


def _current(token: Token, now: float) -> tuple[Token | None, str]:
    if token.revoked is not None:
        return None, f"token {token.id} ({token.name}) is revoked"
    if token.expires is not None and token.expires <= now:
        return None, f"token {token.id} ({token.name}) has expired"
    return token, ""
