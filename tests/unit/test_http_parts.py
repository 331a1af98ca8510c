"""The HTTP server's parts that need no socket: logins kept in bounds, query values typed,
the OpenAPI document made from the route table, the check of who may do what."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reactord.base.stats import Stats
from reactord.http.api import _converted
from reactord.http.auth import CSRF_HEADER, SESSION_COOKIE, Guard, Refusal, Sessions
from reactord.http.routes import ROUTES, Param, openapi_document
from reactord.store.database import Database
from reactord.store.schema import MIGRATIONS
from reactord.store.tokens import TokenStore


def test_logins_are_bounded_by_count_and_end_at_their_ttl() -> None:
    sessions = Sessions(ttl=60, limit=3)
    made = [sessions.create(f"t{i}", now=0) for i in range(5)]
    assert len(sessions) == 3  # the two oldest went
    assert sessions.get(made[0].id, now=1) is None and sessions.get(made[4].id, now=1) is not None
    assert sessions.get(made[4].id, now=60) is None  # expired, and forgotten
    assert len(sessions) == 2
    assert len({s.id for s in made} | {s.csrf for s in made}) == 10  # all distinct


def test_one_tokens_logins_cannot_push_out_the_others() -> None:
    sessions = Sessions(ttl=60, limit=100)
    theirs = sessions.create("other", now=0)
    mine = [sessions.create("mine", now=0) for _ in range(500)]
    assert len(sessions) == 1 + Sessions.PER_TOKEN
    assert sessions.get(theirs.id, now=1) is theirs and sessions.get(mine[-1].id, now=1) is mine[-1]
    assert sessions.get(mine[0].id, now=1) is None


@pytest.mark.parametrize(
    "kind, text, expected",
    [("integer", "12", 12), ("integer", "-3", -3), ("number", "1.5", 1.5), ("boolean", "true", True)],
)
def test_query_values_are_converted_to_their_declared_type(kind: str, text: str, expected: Any) -> None:
    assert _converted(Param("x", kind, ""), text) == expected


@pytest.mark.parametrize(
    "kind, text",
    [
        ("integer", "1e3"),
        ("integer", "²"),  # a digit to str.isdigit, not to int()
        ("integer", "9" * 30),
        ("number", "nan"),
        ("number", "inf"),
        ("boolean", "yes"),
        ("string", "x" * 2000),
    ],
)
def test_a_query_value_that_is_not_its_type_is_a_400(kind: str, text: str) -> None:
    with pytest.raises(Refusal) as refused:
        _converted(Param("x", kind, ""), text)
    assert refused.value.status == 400 and "x" in refused.value.reason


def test_the_openapi_document_has_one_operation_per_route_with_unique_ids() -> None:
    document = openapi_document()
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len(operations) == len(ROUTES)
    assert len({op["operationId"] for op in operations}) == len(ROUTES)
    assert {r.role for r in ROUTES} == {"read", "operate", "admin"}
    writes = [r for r in ROUTES if r.method != "GET" and r.role == "read"]
    assert {r.path for r in writes} == {"/gate", "/rules/explain", "/rules/check"}  # reads with a body


class _Request:
    """What the guard reads of a request."""

    def __init__(self, method: str = "GET", headers: dict[str, str] | None = None, cookie: str | None = None):
        self.method = method
        self.headers = headers or {}
        self.cookies = {SESSION_COOKIE: cookie} if cookie else {}
        self.scheme = "http"
        self.host = "127.0.0.1:1"


def test_the_guard_checks_token_role_and_a_logins_csrf_token(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db", MIGRATIONS)
    tokens = TokenStore(db)
    now = [1000.0]
    guard = Guard(tokens, Sessions(60, 10), Stats(), lambda: now[0])
    _reader, read_secret = tokens.create("read", "r", now[0])
    operator, operate_secret = tokens.create("operate", "o", now[0], expires=now[0] + 100)

    def status(request: Any, role: str) -> int:
        try:
            guard.require(request, role)
        except Refusal as exc:
            return exc.status
        return 200

    bearer = {"Authorization": f"Bearer {operate_secret}"}
    assert status(_Request("POST", bearer), "operate") == 200  # a bearer token needs no CSRF token
    assert status(_Request("POST", {"Authorization": f"Bearer {read_secret}"}), "operate") == 403
    assert status(_Request("GET", {"Authorization": "Bearer rdt_nope"}), "read") == 401
    assert status(_Request("GET", {"Authorization": f"Basic {read_secret}"}), "read") == 401

    login = guard.sessions.create(operator.id, now[0])
    assert status(_Request("GET", cookie=login.id), "operate") == 200
    assert status(_Request("POST", cookie=login.id), "operate") == 403
    assert status(_Request("POST", {CSRF_HEADER: login.csrf}, cookie=login.id), "operate") == 200
    crossed = {CSRF_HEADER: login.csrf, "Origin": "http://elsewhere"}
    assert status(_Request("POST", crossed, cookie=login.id), "operate") == 403
    now[0] += 100  # the token expires: its login ends with it
    assert status(_Request("GET", cookie=login.id), "read") == 401
    assert status(_Request("GET", cookie=login.id), "read") == 401  # and stays ended
    db.close()
