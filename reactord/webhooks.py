"""Webhooks in: authenticated requests turned into events (served by ``reactord.http``).

``POST /hooks/<name>[/<path>]`` for each configured endpoint. Every endpoint authenticates
(an HMAC-SHA256 signature header, GitHub style ``sha256=<hex>``, or a bearer token, both
compared in constant time); a request that does not, or that is too large, is refused with
its status code and counted, and nothing reaches the bus. What the body becomes depends on the
endpoint's kind (``json``, ``cloudevents``, ``github``, ``alertmanager``: see
reactord.webhook_kinds).

What one request may cost is bounded: its body (``max_body``), the events it becomes
(``max_events``, 413 beyond: checked before any event is built), the endpoint's budget of
events and bytes per second (429 with ``Retry-After``), the requests handled at once
(``max_connections``; more wait for a slot), and the master's state (503 with
``Retry-After`` while its action queue or its disk is full). A request's events are written
in one transaction, on the master's loop, or none of them.

A delivery its sender sends again (the same dedupe key, within ``dedupe_window``) is answered
with the ids of its first delivery and logged once: the keys are looked up and written on the
master's loop, in the transaction of the events they name (``deliver``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, Protocol

from reactord.base.errors import MasterError
from reactord.base.stats import Stats
from reactord.budget import Budgets
from reactord.protocol.errors import EncodeError, StorageFull, TagError
from reactord.protocol.events import Event, check_data
from reactord.protocol.tags import validate_tag
from reactord.store.deliveries import Deliveries
from reactord.store.eventlog import Writes
from reactord.webhook_kinds import KINDS, Item, Refused, Request, segment

__all__ = [
    "KINDS",
    "Busy",
    "Delivered",
    "Endpoint",
    "Item",
    "Refused",
    "WebhookIntake",
    "deliver",
]

log = logging.getLogger("reactord.webhooks")

_LENGTH = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit also takes "²"


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a request's events became: the ids of all of them, in order, and how many of
    those an earlier delivery had already logged."""

    ids: list[str]
    duplicate: int = 0


#: Hands a request's events (endpoint name, items) to the master; runs on the master's loop.
Emit = Callable[[str, list[Item]], Delivered]


class EmitMany(Protocol):
    """The pipeline's ``emit_many``, as ``deliver`` uses it."""

    def __call__(
        self,
        items: list[tuple[str, dict[str, Any]]],
        *,
        source: str,
        writes: Callable[[list[Event]], Writes] | None = None,
    ) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str
    secret: bytes | None
    token: str | None


class Busy(MasterError):
    """The master cannot take events now (its action queue or its disk is full): 503."""


def authenticate(endpoint: Endpoint, headers: Any, body: bytes) -> None:
    """Raise ``Refused(401)`` unless the request carries the endpoint's signature or token."""
    if endpoint.secret is not None:
        given = headers.get("X-Hub-Signature-256") or headers.get("X-Signature-256") or ""
        expected = "sha256=" + hmac.new(endpoint.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Refused(401, "bad or missing signature")
    if endpoint.token is not None:
        given = headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {endpoint.token}".encode()):
            raise Refused(401, "bad or missing bearer token")


def deliver(
    endpoint: str, items: list[Item], deliveries: Deliveries, emit_many: EmitMany, now: float
) -> Delivered:
    """Log the items no earlier delivery (within the window) logged, with their keys, in one
    transaction; on the master's loop, so that two copies of a delivery sent at once are
    told apart. An item whose key an earlier item of the same request has is a copy of it."""
    known = deliveries.known(endpoint, [i.key for i in items if i.key], now)
    first: dict[str, int] = {}  # key -> index of its first new item in this request
    fresh: list[Item] = []
    slots: list[int | list[str]] = []  # per item: its index in `fresh`, or the ids logged before
    for item in items:
        if item.key is not None and item.key in known:
            slots.append(known[item.key])
        elif item.key is not None and item.key in first:
            slots.append(first[item.key])
        else:
            if item.key is not None:
                first[item.key] = len(fresh)
            slots.append(len(fresh))
            fresh.append(item)

    def keys(events: list[Event]) -> Writes:
        made = {i.key: [e.id] for i, e in zip(fresh, events, strict=True) if i.key is not None}
        return deliveries.writes(endpoint, made, now)

    events = (
        emit_many([(i.tag, i.data) for i in fresh], source=f"webhook/{endpoint}", writes=keys)
        if fresh
        else []
    )
    ids: list[str] = []
    for slot in slots:
        ids.extend(slot if isinstance(slot, list) else [events[slot].id])
    return Delivered(ids, len(items) - len(fresh))


class WebhookIntake:
    """What ``POST /hooks/<name>[/<path>]`` does, served by the master's HTTP server
    (reactord.http): the checks in order, then the events to the master through ``emit``."""

    def __init__(
        self,
        endpoints: dict[str, Endpoint],
        max_body: int,
        stats: Stats,
        emit: Emit,
        *,
        budgets: Budgets | None = None,
        max_events: int = 1000,
        max_connections: int = 64,
    ) -> None:
        self.endpoints = endpoints
        self.max_body = max_body
        self.stats = stats
        self.emit = emit
        self.budgets = budgets
        self.max_events = max_events
        self.slots = asyncio.Semaphore(max_connections)  # more requests wait for a slot

    def endpoint(self, name: str, headers: Any) -> tuple[Endpoint, int]:
        """The endpoint a request names and its body's length, checked before the body is read."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise Refused(404, "no such webhook endpoint")
        length = headers.get("Content-Length")
        if length is None or not _LENGTH.fullmatch(length):
            raise Refused(411, "a Content-Length is required")
        if int(length) > self.max_body:
            raise Refused(413, f"the body is over {self.max_body} bytes")
        return endpoint, int(length)

    def take(self, endpoint: Endpoint, subpath: list[str], headers: Message, body: bytes) -> dict[str, Any]:
        """A request's events, logged (202's answer) or refused whole (``Refused``)."""
        authenticate(endpoint, headers, body)
        source = f"webhook/{endpoint.name}"
        budgets = self.budgets  # after authentication: nobody else can spend an endpoint's budget
        if budgets is not None and not budgets.admit(source, len(body)):
            raise Refused(429, "over this endpoint's budget (limits)", budgets.wait_for(source))
        path = "/".join(segment(p) for p in subpath if p)
        items = KINDS[endpoint.kind](Request(endpoint.name, path, headers, body), self.max_events)
        if len(items) > self.max_events:
            raise Refused(413, f"this request becomes {len(items)} events; at most {self.max_events}")
        try:  # every event checked before the first is emitted: a request is taken whole or not at all
            for item in items:
                validate_tag(item.tag)
                check_data(item.data)
        except (TagError, EncodeError) as exc:
            raise Refused(400, str(exc)) from None
        if budgets is not None:
            budgets.charge(source, len(items))
        try:
            delivered = self.emit(endpoint.name, items)
        except Busy as exc:
            raise Refused(503, str(exc), 5.0) from None
        except StorageFull as exc:
            raise Refused(503, f"cannot store events now: {exc}", 5.0) from None
        self.stats.incr_labeled("webhook_events", len(items) - delivered.duplicate, endpoint=endpoint.name)
        answer: dict[str, Any] = {"accepted": len(delivered.ids), "ids": delivered.ids}
        if delivered.duplicate:
            self.stats.incr("webhook.duplicate", delivered.duplicate)
            answer["duplicate"] = delivered.duplicate
            log.info(
                "webhook %s: %d of %d events already logged by an earlier delivery",
                endpoint.name,
                delivered.duplicate,
                len(items),
            )
        return answer

    def refused(self, path: str, exc: Refused) -> None:
        """Count and log a refused request (one line, the path cut short and escaped)."""
        self.stats.incr(f"webhook.refused.{exc.status}")
        log.warning("webhook %s refused (%d): %s", path[:100], exc.status, exc.reason)
