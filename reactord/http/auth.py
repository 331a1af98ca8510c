"""Who is asking, and may they: API tokens, dashboard logins, roles and CSRF.

A request proves itself in one of two ways:

- ``Authorization: Bearer rdt_...``: an API token (``reactord token create``), for scripts.
  Nothing is ambient about it (a browser never adds it by itself), so it needs no CSRF token.
- the ``rd_session`` cookie of a dashboard login (``POST /ui/login`` with a token): HttpOnly,
  SameSite=Strict, Secure over HTTPS. Every request with it that is not a read (anything but
  GET and HEAD) must also carry the login's CSRF token in ``X-CSRF-Token``, and a browser's
  ``Origin``, when it sends one, must be this server's.

Either way the token is checked again at every request: a revoked or expired token is refused
at once, its logins with it. The token's role must include the route's (``read`` <
``operate`` < ``admin``). A refusal (``Refusal``) is answered with its status and one short
reason, counted (``http.refused.<status>``) and logged in one line with the detail the client
is not told (reactord.http.server).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reactord.base.errors import MasterError
from reactord.base.stats import Stats

if TYPE_CHECKING:
    from aiohttp import web

    from reactord.store.tokens import Token, TokenStore

log = logging.getLogger("reactord.http")

SESSION_COOKIE = "rd_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: How often a token's ``last_used`` is written at most (one write per request would be a
#: write per page refresh).
LAST_USED_EVERY = 60.0


class Refusal(MasterError):
    """A request refused: ``status`` and ``reason`` for the client, ``detail`` for the log."""

    def __init__(self, status: int, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


@dataclass(slots=True)
class Session:
    """One dashboard login: the token it was made with and the CSRF token of its writes."""

    id: str
    token_id: str
    csrf: str
    expires: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the token, and the login it came through (None: a bearer token)."""

    token: Token
    session: Session | None

    @property
    def label(self) -> str:
        return f"{self.token.name} ({self.token.id}, {self.token.role})"


class Sessions:
    """Dashboard logins in memory (a restart logs everyone out), at most ``limit`` of them and
    ``PER_TOKEN`` per token: past either bound the oldest goes (so one token's holder cannot
    push everyone else's logins out); each lasts ``ttl`` seconds."""

    PER_TOKEN = 16

    def __init__(self, ttl: float, limit: int) -> None:
        self.ttl = ttl
        self.limit = limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, token_id: str, now: float) -> Session:
        mine = [s.id for s in self._sessions.values() if s.token_id == token_id]
        for session_id in mine[: max(0, len(mine) - self.PER_TOKEN + 1)]:
            del self._sessions[session_id]
        while len(self._sessions) >= self.limit:
            self._sessions.popitem(last=False)
        session = Session(secrets.token_urlsafe(32), token_id, secrets.token_urlsafe(32), now + self.ttl)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


class Guard:
    """Checks every request of the API and the dashboard (see the module's docstring)."""

    def __init__(
        self, tokens: TokenStore, sessions: Sessions, stats: Stats, clock: Callable[[], float]
    ) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self.stats = stats
        self.clock = clock
        self._written: dict[str, float] = {}  # token id -> when its last_used was last written

    def identify(self, request: web.Request) -> Principal:
        """The token (and login) a request comes with; ``Refusal(401)`` when it has none valid."""
        now = self.clock()
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, presented = header.partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise Refusal(401, "send Authorization: Bearer <token>", "not a bearer token")
            token, why = self.tokens.check(presented.strip(), now)
            if token is None:
                raise Refusal(401, "the token is not valid (unknown, revoked or expired)", why)
            return Principal(token, None)
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id is None:
            raise Refusal(401, "log in, or send Authorization: Bearer <token>", "no credentials")
        session = self.sessions.get(session_id, now)
        if session is None:
            raise Refusal(401, "the login has ended: log in again", "unknown or expired session")
        token, why = self.tokens.valid(session.token_id, now)
        if token is None:
            self.sessions.drop(session.id)
            raise Refusal(401, "the login's token is no longer valid: log in again", why)
        return Principal(token, session)

    def require(self, request: web.Request, role: str) -> Principal:
        """The request's principal, if its role includes ``role`` and, for a write through a
        login, it carries the login's CSRF token from this server's own pages."""
        principal = self.identify(request)
        if not principal.token.allows(role):
            raise Refusal(
                403,
                f"this needs the {role} role; the token has {principal.token.role}",
                f"token {principal.label} lacks {role}",
            )
        session = principal.session
        if session is not None and request.method not in SAFE_METHODS:
            check_origin(request)
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                raise Refusal(
                    403,
                    f"a write needs the login's CSRF token in {CSRF_HEADER}",
                    "missing or wrong CSRF token",
                )
        self._mark_used(principal.token.id)
        return principal

    def _mark_used(self, token_id: str) -> None:
        now = self.clock()
        if now - self._written.get(token_id, 0.0) < LAST_USED_EVERY:
            return
        if len(self._written) > 10_000:
            self._written.clear()
        self._written[token_id] = now
        self.tokens.used(token_id, now)


def check_origin(request: web.Request) -> None:
    """A browser's write must come from this server's own pages: its ``Origin`` (sent by every
    current browser with a POST) names this host, and fetch metadata, when sent, says same-origin."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise Refusal(
            403, "a write from another site is refused", f"cross-origin write from {origin[:100]!r}"
        )
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refusal(403, "a write from another site is refused", f"Sec-Fetch-Site {site[:40]!r}")
