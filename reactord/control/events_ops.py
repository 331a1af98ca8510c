"""Control operations of events: ``event.fire``, ``event.list``, ``event.show``, ``event.replay``,
and ``bus.probe`` (how a bus watcher proves its subscription is live)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reactord.base.errors import ControlError
from reactord.control.args import Args, arg, tag_glob
from reactord.control.interfaces import AuditTrail, EventHistory, JobHistory
from reactord.protocol.errors import EncodeError, TagError
from reactord.protocol.ids import id_time, is_id
from reactord.protocol.localsock import Stream
from reactord.protocol.tags import RESERVED_PREFIX
from reactord.store.eventlog import EventQuery
from reactord.store.jobstore import return_public

if TYPE_CHECKING:
    from reactord.protocol.events import Event

#: Events sent between two turns of the master's loop while listing (about a page of the log).
_BREATHE = 64

#: How deep ``event.show`` follows what an event caused; deeper events are shown alone.
_MAX_CHAIN = 10

#: Replays stored events through the rules: ``(query, dry_run) -> a stream of reports``.
Replay = Callable[[EventQuery, bool], AsyncIterator[dict[str, Any]]]


class Emitter(Protocol):
    """What logs an event and hands it to the rules (the master's event pipeline)."""

    def emit(self, tag: str, data: dict[str, Any], *, source: str = ...) -> Event: ...


class BusProbe(Protocol):
    """The master's local bus, asked to publish a watcher's probe token."""

    def probe(self, token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EventParts:
    """What the event operations reach: the log and what it links to (jobs, the audit), the
    pipeline that logs a fired event, the reactor's replay, the local bus."""

    events: EventHistory
    emitter: Emitter
    jobs: JobHistory
    audit: AuditTrail
    replay: Replay
    bus: BusProbe
    bus_path: Path


async def event_fire(parts: EventParts, args: Args) -> Any:
    """An event from the CLI (source ``cli``) or the HTTP API (``api``); tags under the
    reserved prefix are the master's."""
    tag = arg(args, "tag", str)
    data = arg(args, "data", dict, {})
    source = arg(args, "source", str, "cli")
    if source not in ("cli", "api"):
        raise ControlError("argument 'source' is cli or api", "bad_request")
    if tag.startswith(RESERVED_PREFIX):
        raise ControlError(f"tags under {RESERVED_PREFIX} belong to the master", "bad_request")
    try:
        event = parts.emitter.emit(tag, data, source=source)
    except (TagError, EncodeError) as exc:
        raise ControlError(str(exc), "bad_request") from exc
    return {"id": event.id, "tag": event.tag}


async def event_list(parts: EventParts, args: Args) -> Any:
    events = newest_events(parts.events, query_of(args, 100))
    return Stream(e.public() | {"received": e.received} async for e in events)


async def event_show(parts: EventParts, args: Args) -> Any:
    return _chain(parts, stored_event(parts.events, arg(args, "id", str)), 0)


async def event_replay(parts: EventParts, args: Args) -> Any:
    """The stored events a query names, through the rules again (all of them by default)."""
    return Stream(parts.replay(query_of(args, 0), arg(args, "dry_run", bool, False)))


async def bus_probe(parts: EventParts, args: Args) -> Any:
    parts.bus.probe(arg(args, "token", str))
    return {"bus": str(parts.bus_path)}


def query_of(args: Args, default_limit: int) -> EventQuery:
    """The event query a request's arguments describe (``tag`` a checked glob)."""
    return EventQuery(
        tag=tag_glob(args),
        source=arg(args, "source", str, None),
        since=arg(args, "since", (int, float), None),
        until=arg(args, "until", (int, float), None),
        limit=arg(args, "limit", int, default_limit),
        newest_first=arg(args, "newest_first", bool, True),
    )


def stored_event(events: EventHistory, event_id: str) -> Event:
    """The logged event ``event_id``; ``not_found`` when the log has none (or no longer has it)."""
    event = events.get(event_id)
    if event is None:
        raise ControlError(f"no event {event_id!r} in the log", "not_found")
    return event


async def newest_events(log: EventHistory, query: EventQuery) -> AsyncIterator[Event]:
    """The newest ``query.limit`` events matching ``query`` (0: all of them), oldest first.

    Nothing but a page of the log is held, however many events match. A first pass, newest
    first, keeps only the ids where the answer starts and ends (it reads one event when the
    limit is 0); the second reads forward from the start and stops at the end, fixed before
    anything is sent, so events logged meanwhile never make a listing of everything endless.
    """
    first = last = None
    for count, event in enumerate(log.iterate(replace(query, newest_first=True, limit=query.limit or 1)), 1):
        last, first = last or event.id, event.id
        if count % _BREATHE == 0:
            await asyncio.sleep(0)
    if first is None or last is None:
        return
    since = id_time(first) if query.limit and is_id(first) else query.since
    for count, event in enumerate(log.iterate(replace(query, newest_first=False, limit=0, since=since)), 1):
        if event.id > last:
            return
        if not query.limit or event.id >= first:
            yield event
        if count % _BREATHE == 0:
            await asyncio.sleep(0)


def _chain(parts: EventParts, event: Event, depth: int) -> dict[str, Any]:
    """The event, what the reactor decided and did for it, the jobs it started with their
    returns, and what it caused (recursively, to ``_MAX_CHAIN`` levels): the events its jobs
    emitted on their minions count as caused by it."""
    jobs = []
    for job in parts.jobs.caused_by(event.id):
        returns = parts.jobs.returns(job.jid)
        jobs.append({**job.public(), "returns": {m: return_public(r) for m, r in returns.items()}})
    caused = parts.events.caused_by(event.id)
    for entry in jobs:
        caused += parts.events.caused_by(entry["jid"])
    return {
        **event.public(),
        "received": event.received,
        "decisions": parts.audit.decisions(event.id),
        "actions": parts.audit.actions_for(event.id),
        "jobs": jobs,
        "caused": [_chain(parts, e, depth + 1) if depth < _MAX_CHAIN else e.public() for e in caused],
    }
