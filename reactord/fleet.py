"""Fleet state and the deploy gate: the latest state of every minion, trusted only while fresh.

A state row is the latest event of one (source, tag). A row is stale when it is older than
``state.ttl`` or when its minion is down; stale and missing rows fail a gate unless the
caller allows them. The gate checks rows with the rules' own condition language.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.protocol.events import Event
from reactord.protocol.tags import tag_matches
from reactord.reactor.gatechecks import Check
from reactord.store.interfaces import EventLog, FleetState, Presence
from reactord.store.statetable import clears


@dataclass(frozen=True, slots=True)
class Row:
    event: Event
    presence: str | None
    stale: str | None  # why the row is not trusted, or None

    def public(self, now: float) -> dict[str, Any]:
        return {
            "source": self.event.source,
            "tag": self.event.tag,
            "id": self.event.id,
            "time": self.event.time,
            "received": self.event.received,
            "age": round(now - self.event.received, 3),
            "presence": self.presence,
            "stale": self.stale is not None,
            "why_stale": self.stale,
            "data": self.event.data,
        }


class Fleet:
    def __init__(
        self,
        state: FleetState,
        event_log: EventLog,
        registry: Presence,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.event_log = event_log
        self.registry = registry
        self.ttl = ttl
        self.clock = clock

    def rows(
        self,
        tag: str | None = None,
        source: str | None = None,
        sources: list[str] | None = None,
        at: float | None = None,
    ) -> list[Row]:
        """State rows, now or as they were ``at`` a past moment, filtered by tag and source globs."""
        if at is None:
            events = self.state.current()
        else:  # a resolved alert's row was gone then, as it is from the live table
            events = [e for e in self.event_log.latest_at(at) if not clears(e.source, e.data)]
        now = self.clock() if at is None else at
        out = []
        for event in events:
            if tag is not None and not tag_matches(tag, event.tag):
                continue
            if source is not None and not fnmatch.fnmatchcase(event.source, source):
                continue
            if sources is not None and event.source not in sources:
                continue
            out.append(self._row(event, now, live=at is None))
        return out

    def _row(self, event: Event, now: float, live: bool) -> Row:
        record = self.registry.get(event.source)
        presence = record.presence if record is not None and live else None
        stale = None
        if now - event.received > self.ttl:
            stale = f"no update for {now - event.received:.0f}s (state.ttl {self.ttl:g}s)"
        elif presence == "down":
            stale = f"{event.source} is down"
        return Row(event, presence, stale)

    def gate(self, checks: list[Check], minions: list[str], *, allow_stale: bool = False) -> dict[str, Any]:
        """Whether every minion's current state satisfies every check, and why not where not."""
        rows = self.rows(sources=minions)
        by_minion: dict[str, list[Row]] = {m: [] for m in minions}
        for row in rows:
            by_minion[row.event.source].append(row)
        results: dict[str, dict[str, Any]] = {}
        for minion in minions:
            reasons = []
            for check in checks:
                matching = [r for r in by_minion[minion] if tag_matches(check.on, r.event.tag)]
                if not matching:
                    if not allow_stale:
                        reasons.append(f"{check.on}: no state reported")
                    continue
                for row in matching:
                    if row.stale and not allow_stale:
                        reasons.append(f"{row.event.tag}: stale ({row.stale})")
                        continue
                    why = check.when.failure(row.event) if check.when is not None else None
                    if why:
                        reasons.append(f"{row.event.tag}: {why}")
            results[minion] = {"ok": not reasons, "reasons": reasons}
        return {"open": bool(minions) and all(r["ok"] for r in results.values()), "minions": results}
