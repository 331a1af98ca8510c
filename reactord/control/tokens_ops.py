"""Control operations of API tokens: ``token.create``, ``token.list`` and ``token.revoke``
(the HTTP API's and the dashboard's credentials; see ``reactord.store.tokens``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError, StoreError
from reactord.control.args import Args, arg
from reactord.control.interfaces import Clock

if TYPE_CHECKING:
    from reactord.store.tokens import Token


class Tokens(Protocol):
    def create(self, role: str, name: str, now: float, expires: float | None = ...) -> tuple[Token, str]: ...

    def listing(self) -> list[Token]: ...

    def revoke(self, token_id: str, now: float) -> Token: ...


@dataclass(frozen=True, slots=True)
class TokenParts:
    tokens: Tokens
    clock: Clock


async def token_create(parts: TokenParts, args: Args) -> Any:
    """A new token (``role``, opt. ``name`` and ``expires_in`` seconds): its record and the
    token itself, which is shown this once and never stored."""
    now = parts.clock()
    expires_in = arg(args, "expires_in", (int, float), None)
    if expires_in is not None and not 0 < expires_in <= 10 * 365 * 86400:
        raise ControlError("expires_in must be over 0 and at most ten years", "bad_request")
    try:
        token, secret = parts.tokens.create(
            arg(args, "role", str),
            arg(args, "name", str, "token"),
            now,
            None if expires_in is None else now + expires_in,
        )
    except StoreError as exc:
        raise ControlError(str(exc), "bad_request") from exc
    return {**token.public(), "token": secret}


async def token_list(parts: TokenParts, args: Args) -> Any:
    return [t.public() for t in parts.tokens.listing()]


async def token_revoke(parts: TokenParts, args: Args) -> Any:
    try:
        return parts.tokens.revoke(arg(args, "id", str), parts.clock()).public()
    except StoreError as exc:
        raise ControlError(str(exc)) from exc
