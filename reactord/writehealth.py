"""Whether the master's database takes writes: the state of a full-disk episode.

A write that fails for lack of space starts an episode: one error line, a counter, and a
backoff that ingest waits out before it tries again (0.5 s, doubling up to 15 s). The
episode ends once writes have succeeded for ``RECOVERY_QUIET`` seconds without a failure: a
nearly full disk still takes small writes (the write-ahead log reuses its space) and refuses
large ones, and one episode is one error line and one recovery line, not one per flip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reactord.base.stats import Stats
from reactord.protocol.errors import StorageFull

log = logging.getLogger("reactord.events")

#: Backoff of ingest while the disk is full: the first wait and the longest.
RETRY_FIRST, RETRY_MAX = 0.5, 15.0
#: Seconds of writes without a failure that end an episode.
RECOVERY_QUIET = 10.0


class WriteHealth:
    def __init__(
        self,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.clock = clock
        self.monotonic = monotonic
        #: Why writes fail (the disk is full), or None while they succeed.
        self.error: str | None = None
        self.since = 0.0
        self.retry_at = 0.0
        self._backoff = RETRY_FIRST
        self._last_failure = self._last_success = 0.0

    def failed(self, error: StorageFull) -> None:
        self.stats.incr("storage.errors")
        if self.error is None:
            self.since = self.clock()
            log.error(
                "%s: events are not acknowledged until it can be written (minions keep them); "
                "retrying with backoff",
                error,
            )
        self.error = str(error)
        self._last_failure = self.monotonic()
        self.retry_at = self._last_failure + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX)

    def succeeded(self, held: int = 0) -> None:
        self._backoff = RETRY_FIRST
        self.retry_at = 0.0
        self._last_success = self.monotonic()
        if self.error is not None and self._last_success - self._last_failure >= RECOVERY_QUIET:
            log.warning(
                "the database is written again after %.0fs (%d of the master's events waited)",
                self.clock() - self.since,
                held,
            )
            self.error = None

    def backing_off(self) -> bool:
        """A write failed and its backoff has not been reset by a success."""
        return self.retry_at > 0.0

    def wait(self) -> float:
        """Seconds until the next write may be tried."""
        return self.retry_at - self.monotonic()

    def quiet_without_success(self) -> bool | None:
        """None while no episode may end yet; else whether nothing succeeded since the last
        failure (then a probe write tells)."""
        if self.error is None or self.monotonic() - self._last_failure < RECOVERY_QUIET:
            return None
        return self._last_success <= self._last_failure
