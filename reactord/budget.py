"""Per-source budgets: how many events and bytes one sender may hand the master per second.

One token bucket per source for events and one for bytes, refilled at the configured rate up
to a burst (``burst_seconds`` of the rate). A frame or request is admitted while both
buckets hold tokens and is then charged in full: a bucket may go into debt, so one frame
larger than the burst still passes, and the sender then waits its debt out. What is refused
is counted per source (``reactord_budget_refused_total{source}`` and ``reactord status``).

What a refusal means depends on the door: a minion's frame is dropped before it is decoded
and not acknowledged, so the minion keeps the events in its outbox and sends them again
later (its rate is held to the budget, nothing is lost); a webhook request is answered 429
with ``Retry-After``. The master's own events and the CLI's are not budgeted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from reactord.base.stats import Stats

log = logging.getLogger("reactord.budget")

#: Sources tracked at most (the least recently seen are forgotten, and start full again).
MAX_SOURCES = 100_000


@dataclass(slots=True)
class _Buckets:
    events: float
    bytes: float
    stamp: float


class Budgets:
    def __init__(
        self,
        events_per_second: float,
        bytes_per_second: float,
        burst_seconds: float,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events_rate = events_per_second
        self.bytes_rate = bytes_per_second
        self.burst = burst_seconds
        self.stats = stats
        self.clock = clock
        self._sources: OrderedDict[str, _Buckets] = OrderedDict()
        self.refused: dict[str, int] = {}
        self._lock = threading.Lock()  # ingest on the loop, webhooks on their HTTP threads

    def _buckets(self, source: str) -> _Buckets:
        now = self.clock()
        buckets = self._sources.get(source)
        if buckets is None:
            buckets = _Buckets(self.events_rate * self.burst, self.bytes_rate * self.burst, now)
            self._sources[source] = buckets
            if len(self._sources) > MAX_SOURCES:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
            elapsed = max(0.0, now - buckets.stamp)
            buckets.events = min(self.events_rate * self.burst, buckets.events + elapsed * self.events_rate)
            buckets.bytes = min(self.bytes_rate * self.burst, buckets.bytes + elapsed * self.bytes_rate)
            buckets.stamp = now
        return buckets

    def admit(self, source: str, size: int, events: int = 0) -> bool:
        """Whether ``source`` may hand over ``size`` bytes (and ``events`` events) now; if so,
        they are charged. A refusal is counted."""
        with self._lock:
            return self._admit(source, size, events)

    def _admit(self, source: str, size: int, events: int) -> bool:
        buckets = self._buckets(source)
        if (self.events_rate and buckets.events <= 0) or (self.bytes_rate and buckets.bytes <= 0):
            self.refused[source] = self.refused.get(source, 0) + 1
            if len(self.refused) > MAX_SOURCES:
                self.refused.pop(next(iter(self.refused)))
            self.stats.incr_labeled("budget_refused", source=source)
            log.warning(
                "%s is over its budget (limits: %g events/s, %d bytes/s): refused until it slows down",
                source,
                self.events_rate,
                self.bytes_rate,
                extra={"source": source},
            )
            return False
        buckets.bytes -= size
        buckets.events -= events
        return True

    def charge(self, source: str, events: int) -> None:
        """Charge events counted after admission (a frame's events are known once decoded)."""
        with self._lock:
            self._buckets(source).events -= events

    def wait_for(self, source: str) -> float:
        """Seconds until ``source`` has tokens again (for a Retry-After)."""
        with self._lock:
            buckets = self._buckets(source)
        waits = [0.0]
        if self.events_rate and buckets.events <= 0:
            waits.append((1 - buckets.events) / self.events_rate)
        if self.bytes_rate and buckets.bytes <= 0:
            waits.append((1 - buckets.bytes) / self.bytes_rate)
        return max(waits)
