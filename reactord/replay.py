"""Stored events fed to the rules again (``event replay``), oldest first, with fresh rule state.

The events are counted first, then read again page by page: memory stays bounded whatever
the range, and the count also fixes the end, so the events logged meanwhile (the replay's
own among them) are not fed. What fires is recorded as decisions of the replay and, unless
it is a dry run, run: its actions carry the replay's id in their idempotency keys, and a long
replay waits for room in the action queue as ingest does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from reactord.actions.dispatcher import ActionDispatcher
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.rules import Rule
from reactord.store.eventlog import EventQuery
from reactord.store.interfaces import ActionLog, EventLog


class Replayer:
    """``engine``: the reactor's (its rules at the start of each replay); ``announce``: count
    and log a firing as the reactor does."""

    def __init__(
        self,
        engine: Engine,
        events: EventLog,
        audit: ActionLog,
        dispatcher: ActionDispatcher,
        announce: Callable[[Rule, Event], None],
        *,
        max_depth: int,
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.events = events
        self.audit = audit
        self.dispatcher = dispatcher
        self.announce = announce
        self.max_depth = max_depth
        self.clock = clock

    async def replay(self, query: EventQuery, dry_run: bool) -> AsyncIterator[dict[str, Any]]:
        """A header (``replay``: its id, ``total``), then one item per event (``done``, ``fired``
        so far, and ``event`` when rules fired on it)."""
        replay_id = new_id(self.clock())
        engine = Engine(self.engine.rules, max_depth=self.max_depth, minions=self.engine.minions)
        oldest_first = replace(query, newest_first=False)
        total, last_id = await self._count(oldest_first)
        yield {"replay": replay_id, "total": total, "done": 0, "fired": 0, "dry_run": dry_run}
        previous: dict[tuple[str, str], Event] = {}
        fired = 0
        events = itertools.takewhile(lambda e: e.id <= last_id, self.events.iterate(oldest_first))
        for done, stored in enumerate(events, start=1):
            if not dry_run and self.dispatcher.saturated:
                await self.dispatcher.wait_room()  # a long replay waits for the action queue too
            event = replace(stored, replayed=True)
            decisions = self._due(engine, event.received or event.time, replay_id, dry_run)
            decisions += self._decide(engine, event, previous, replay_id, dry_run)
            fired += sum(1 for d in decisions if d.fired)
            item: dict[str, Any] = {"done": done, "total": total, "fired": fired}
            if any(d.fired for d in decisions):
                item["event"] = {
                    "id": event.id,
                    "tag": event.tag,
                    "rules": [d.rule.name for d in decisions if d.fired],
                }
            yield item
            if done % 200 == 0:
                await asyncio.sleep(0)  # let the master breathe during long replays

    async def _count(self, query: EventQuery) -> tuple[int, str]:
        """How many events the query takes, and the id of the last."""
        total, last_id = 0, ""
        for counted in self.events.iterate(query):
            total, last_id = total + 1, counted.id
            if total % 1000 == 0:
                await asyncio.sleep(0)
        return total, last_id

    def _due(self, engine: Engine, until: float, replay_id: str, dry_run: bool) -> list[Decision]:
        """``for`` holds and absences that came due before the next event, in the replay's
        own time (the events'), recorded and run as the tick would have."""
        due = [d for _, d in engine.due_until(until)]
        self._record(due, replay_id, dry_run)
        return due

    def _record(self, decisions: list[Decision], replay_id: str, dry_run: bool) -> None:
        rows = []
        for decision in decisions:
            rows.append(
                (
                    decision.event.id,
                    decision.rule.name,
                    decision.fired,
                    decision.reason,
                    self.clock(),
                    replay_id,
                )
            )
            if decision.fired and not dry_run:
                self.announce(decision.rule, decision.event)
                self.dispatcher.submit(decision.rule, decision.event, replay=replay_id)
        if not dry_run:
            self.audit.record_decisions(rows)

    def _decide(
        self,
        engine: Engine,
        event: Event,
        previous: dict[tuple[str, str], Event],
        replay_id: str,
        dry_run: bool,
    ) -> list[Decision]:
        """One event through the replay's engine: its decisions recorded, what fired run."""
        key = (event.source, event.tag)
        decisions = engine.evaluate(event, previous.get(key), event.received or event.time)
        previous[key] = event
        self._record(decisions, replay_id, dry_run)
        return decisions
