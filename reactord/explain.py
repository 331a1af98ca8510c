"""Why the rules did or did not fire: what was decided when an event arrived, and what the
rules loaded now decide for it (``rules explain``). Nothing is run and no state changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from reactord.protocol.events import Event
from reactord.reactor.engine import Engine


class Decisions(Protocol):
    def decisions(self, event_id: str) -> list[dict[str, Any]]:
        """What was recorded for an event: ``{rule, fired, reason, time, replay?}`` each."""
        ...


class History(Protocol):
    def previous(self, event: Event) -> Event | None:
        """The stored event of the same source and tag that came before ``event``."""
        ...


class Explainer:
    """``latest``: ``(source, tag) -> the latest event of that pair`` (the state table's)."""

    def __init__(
        self,
        engine: Engine,
        decisions: Decisions,
        history: History,
        latest: Callable[[str, str], Event | None],
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.decisions = decisions
        self.history = history
        self.latest = latest
        self.clock = clock

    def recorded(self, event: Event) -> list[dict[str, Any]]:
        """What was decided when ``event`` arrived.

        Firings and refusals by state (throttle, threshold, for, depth) are recorded with the
        event; misses on ``when`` or ``changed`` depend only on the event and the one before
        it, so they are worked out again here (marked ``recomputed``).
        """
        recorded = self.decisions.decisions(event.id)
        named = {d["rule"] for d in recorded if not d.get("replay")}
        previous = self.history.previous(event)
        for decision in self.engine.evaluate(event, previous, event.received, commit=False):
            if decision.rule.name in named:
                continue
            reason = decision.reason if not decision.fired else "not recorded: the rules changed since?"
            recorded.append(
                {
                    "rule": decision.rule.name,
                    "fired": False,
                    "reason": reason,
                    "time": event.received,
                    "recomputed": True,
                }
            )
        return recorded

    def explain(self, event: Event, *, stored: bool) -> list[dict[str, Any]]:
        """What the loaded rules decide for ``event`` now (without changing any state).

        A stored event is compared with the event that came before it; a new one with the
        latest of its source and tag.
        """
        previous = self.history.previous(event) if stored else self.latest(event.source, event.tag)
        return [d.public() for d in self.engine.evaluate(event, previous, self.clock(), commit=False)]
