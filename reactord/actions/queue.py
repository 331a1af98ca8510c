"""The firings waiting to run, and those running: bounded concurrency and back-pressure.

At most ``max_concurrent`` firings run at once, each as one task; the rest wait in memory,
in order. The queue (waiting and running) is bounded by count and by bytes; at the bound it
is ``saturated`` and ingest waits (``wait_room``) until it is below 90% of both bounds, so
nothing is refused: minions keep their events in their outboxes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from reactord.protocol.events import Event
from reactord.reactor.rules import Rule

log = logging.getLogger("reactord.actions")


@dataclass(slots=True)
class Firing:
    """One rule fired on one event: its action ids (one per action, in order), and where to
    start (a resumed firing skips the actions that had finished)."""

    rule: Rule
    event: Event
    ids: list[str]
    replay: str | None = None
    start: int = 0
    resumed: bool = False
    weight: int = 0


def firing_weight(event: Event) -> int:
    """What a queued firing holds in memory, roughly (its event, unpacked)."""
    return 600 + 4 * len(event.packed_data())


class FiringQueue:
    """``run`` is given each firing once a slot is free; a firing that raises is logged."""

    def __init__(
        self,
        run: Callable[[Firing], Coroutine[Any, Any, None]],
        *,
        max_concurrent: int,
        max_pending: int,
        max_pending_bytes: int,
    ) -> None:
        self.run = run
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.queued_bytes = 0
        self._queue: deque[Firing] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def in_flight(self) -> int:
        """Firings queued or running."""
        return len(self._tasks) + len(self._queue)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._tasks)

    @property
    def room(self) -> int:
        """Firings the queue can take before it is at its bound."""
        return max(0, self.max_pending - self.in_flight)

    @property
    def saturated(self) -> bool:
        """Whether the queue is at its bound: ingest should wait (``wait_room``)."""
        return self.in_flight >= self.max_pending or self.queued_bytes >= self.max_pending_bytes

    async def wait_room(self) -> None:
        """Return once the queue has room again (below 90% of both bounds)."""
        while self.saturated or not self._room.is_set():
            self._room.clear()
            self._update_room()
            if self._room.is_set():
                return
            await self._room.wait()

    def _update_room(self) -> None:
        if self.in_flight < 0.9 * self.max_pending and self.queued_bytes < 0.9 * self.max_pending_bytes:
            self._room.set()

    def enqueue(self, firing: Firing) -> None:
        """Queue a firing; it runs when a slot is free."""
        firing.weight = firing_weight(firing.event)
        self._queue.append(firing)
        self.queued_bytes += firing.weight
        if self.saturated:
            self._room.clear()
        self._pump()

    def _pump(self) -> None:
        while self._queue and len(self._tasks) < self.max_concurrent:
            firing = self._queue.popleft()
            task = asyncio.get_running_loop().create_task(self.run(firing))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, firing=firing))

    def _finished(self, task: asyncio.Task[None], *, firing: Firing) -> None:
        self._tasks.discard(task)
        self.queued_bytes -= firing.weight
        if not task.cancelled() and task.exception() is not None:
            log.error("a firing of %s failed: %r", firing.rule.name, task.exception())
        self._update_room()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._pump()

    async def close(self) -> None:
        """Forget what waits and stop what runs (the outbox keeps both for the next start)."""
        self._queue.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
