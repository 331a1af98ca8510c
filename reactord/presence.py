"""Presence: each accepted minion is up, suspect or down, from the time since it was last heard.

Every transition is emitted as ``reactor/presence/<id>/<state>``. After a master restart,
minions keep their stored presence and get ``suspect_after`` to be heard again, so a master
outage does not mark the whole fleet down; those that do not come back go down. A master that
did not run for a while (stopped with SIGSTOP, starved, a suspended VM) cannot judge who was
silent meanwhile: when its own tick finds such a gap, minions get the same grace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from reactord.base.config import PresenceConfig
from reactord.store.minions import MinionRecord, MinionRegistry

log = logging.getLogger("reactord.presence")

UP, SUSPECT, DOWN = "up", "suspect", "down"
#: Boot time, not monotonic time: on Linux the monotonic clock stops while the host sleeps,
#: and a master whose own host was suspended must see that gap too.
_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
Emit = Callable[[str, dict[str, Any]], object]


class PresenceTracker:
    def __init__(
        self,
        registry: MinionRegistry,
        config: PresenceConfig,
        emit: Emit,
        started: float,
        monotonic: Callable[[], float] = lambda: time.clock_gettime(_CLOCK),
    ) -> None:
        self.registry = registry
        self.config = config
        self.emit = emit
        self.monotonic = monotonic
        self._grace_until = started + config.suspect_after
        self._last_tick: float | None = None
        #: Cluster mode: this master's name (the minions it hears from are its own), and which
        #: minions another master judges (the one holding them, or their partition's owner).
        self.member = ""
        self.judged_elsewhere: Callable[[MinionRecord], bool] | None = None

    def seen(self, minion_id: str, now: float) -> None:
        """Record that a minion was heard from, and bring it up if it was not."""
        self.registry.touch(minion_id, now)
        if self.member:
            self.registry.set_master(minion_id, self.member)
        record = self.registry.get(minion_id)
        if record is not None and record.presence != UP:
            self._transition(minion_id, record.presence, UP, now)

    def state_for(self, last_seen: float, now: float) -> str:
        silent = now - max(last_seen, self._grace_until - self.config.suspect_after)
        if silent < self.config.suspect_after:
            return UP
        if silent < self.config.down_after:
            return SUSPECT
        return DOWN

    def tick(self, now: float) -> None:
        """Re-evaluate every minion; called about once a second."""
        ticked = self.monotonic()
        if self._last_tick is not None and ticked - self._last_tick >= self.config.suspect_after / 2:
            self._grace_until = now + self.config.suspect_after
            log.warning(
                "the master did not run for %.1fs (stopped, starved or suspended): minions get %gs "
                "to be heard again before their presence is judged",
                ticked - self._last_tick,
                self.config.suspect_after,
            )
        self._last_tick = ticked
        for record in self.registry.all():
            if record.presence == DOWN or (
                self.judged_elsewhere is not None and self.judged_elsewhere(record)
            ):
                continue
            state = self.state_for(record.last_seen, now)
            if state != record.presence:
                self._transition(record.id, record.presence, state, now)
        self.registry.flush()

    def forget(self, minion_id: str, now: float) -> None:
        """A minion whose key was deleted or rejected: down now, and out of the registry."""
        record = self.registry.get(minion_id)
        if record is not None and record.presence != DOWN:
            self._transition(minion_id, record.presence, DOWN, now)
        self.registry.remove(minion_id)

    def _transition(self, minion_id: str, old: str, new: str, now: float) -> None:
        self.registry.set_presence(minion_id, new)
        level = logging.INFO if new == UP else logging.WARNING
        log.log(level, "minion %s is %s (was %s)", minion_id, new, old, extra={"minion": minion_id})
        self.emit(f"reactor/presence/{minion_id}/{new}", {"id": minion_id, "from": old, "to": new})
