"""Running beacons: each on its own interval, in worker threads, failures contained.

A beacon that raises or runs past its timeout is logged and tried again at its next
interval; it never stops the minion or the other beacons, and a poll still running is
never started twice. ``onchange`` reports a subject only when its state differs from the
last report; ``emit_at_start`` decides whether the first poll reports. Reports the outbox
cannot take (a full disk) count as errors of their beacon, are reported again at the next
poll, and are logged once per full-disk episode (by the outbox), not once per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minion.beacons.base import Beacon, Report
from minion.errors import OutboxUnavailable
from minion.options import Options
from reactord.protocol.errors import ReactordError
from reactord.protocol.tags import is_valid_segment

log = logging.getLogger("minion.beacons")

Emit = Callable[[list[tuple[str, dict[str, Any]]]], object]
COMMON = ("type", "interval", "onchange", "emit_at_start", "enabled", "poll_timeout")


@dataclass(slots=True)
class Slot:
    name: str
    kind: str
    beacon: Beacon
    interval: float
    onchange: bool
    emit_at_start: bool
    enabled: bool
    timeout: float
    last: dict[str | None, Any] = field(default_factory=dict)
    polls: int = 0
    errors: int = 0
    skipped: int = 0
    emitted: int = 0
    last_error: str | None = None
    last_poll: float = 0.0
    busy: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "enabled": self.enabled,
            "interval": self.interval,
            "onchange": self.onchange,
            "polls": self.polls,
            "errors": self.errors,
            "skipped": self.skipped,
            "emitted": self.emitted,
            "last_error": self.last_error,
            "last_poll": self.last_poll,
        }


def build_slots(config: Mapping[str, Any], kinds: Mapping[str, type]) -> list[Slot]:
    """Beacons from minion.yaml's ``beacons:``; ``ValueError`` names ``beacons.<name>.<key>``."""
    slots = []
    for name, raw in config.items():
        where = f"beacons.{name}"
        options = Options(where, raw)
        kind = options.text("type", str(name)) or str(name)
        cls = kinds.get(kind)
        if cls is None:
            raise ValueError(f"{where}: unknown beacon type {kind!r} (known: {', '.join(sorted(kinds))})")
        interval = options.duration("interval", getattr(cls, "default_interval", 30.0), 0.05)
        onchange = options.boolean("onchange", False)
        emit_at_start = options.boolean("emit_at_start", True)
        enabled = options.boolean("enabled", True)
        timeout = options.duration("poll_timeout", 60.0, 0.05)
        if not is_valid_segment(str(name)):
            raise ValueError(f"{where}: a beacon name is one tag segment: letters, digits, '_', '.', '-'")
        own = Options(where, {k: v for k, v in options.raw.items() if k not in COMMON})
        beacon: Beacon = cls(own)
        own.done()
        slots.append(Slot(str(name), kind, beacon, interval, onchange, emit_at_start, enabled, timeout))
    return slots


def _late_poll_ended(slot: Slot, task: asyncio.Future[list[Report]]) -> None:
    """A poll that ran past its timeout has ended: the beacon may poll again; a failure of
    that poll is logged here (nothing else awaits it)."""
    slot.busy = False
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning(
            "beacon %s: the poll that timed out failed later: %s: %s", slot.name, type(exc).__name__, exc
        )


class BeaconManager:
    def __init__(self, slots: list[Slot], emit: Emit, *, clock: Callable[[], float] = time.time) -> None:
        self.slots = {slot.name: slot for slot in slots}
        self.emit = emit
        self.clock = clock  # a slot's last_poll

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for slot in self.slots.values():
                tasks.create_task(self._loop(slot), name=f"beacon-{slot.name}")

    async def _loop(self, slot: Slot) -> None:
        while True:
            if slot.enabled:
                await self.poll(slot)
            slot.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(slot.interval):
                    await slot.wake.wait()

    async def poll(self, slot: Slot, *, force: bool = False) -> list[Report]:
        """One poll of ``slot``; its reports are emitted (all of them when ``force``)."""
        if slot.busy:
            slot.skipped += 1
            log.warning("beacon %s: the previous poll is still running; skipped", slot.name)
            return []
        slot.busy = True
        first = slot.polls == 0
        try:
            task = asyncio.ensure_future(asyncio.to_thread(slot.beacon.poll))
            async with asyncio.timeout(slot.timeout):
                reports = await asyncio.shield(task)
        except TimeoutError:
            slot.errors += 1
            slot.last_error = f"timed out after {slot.timeout:g}s"
            log.warning("beacon %s timed out after %gs", slot.name, slot.timeout)
            task.add_done_callback(lambda done: _late_poll_ended(slot, done))
            return []
        except Exception as exc:  # a plugin's bug is logged and contained, never fatal
            slot.errors += 1
            slot.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "beacon %s failed: %s", slot.name, slot.last_error, exc_info=log.isEnabledFor(logging.DEBUG)
            )
            slot.busy = False
            return []
        slot.busy = False
        slot.polls += 1
        slot.last_poll = self.clock()
        slot.last_error = None
        out = []
        for report in reports:
            key = report.key()
            changed = report.subject not in slot.last or slot.last[report.subject] != key
            if force or (first and slot.emit_at_start) or (not first and (not slot.onchange or changed)):
                out.append(report)
            else:
                slot.last[report.subject] = key
        if out and self._emit(slot, out):
            for report in out:  # remembered only once queued: a change that was not sent is sent again
                slot.last[report.subject] = report.key()
        return out

    def _emit(self, slot: Slot, out: list[Report]) -> bool:
        """Queue a poll's reports; one that cannot be queued is logged, the beacon goes on."""
        events = [(f"beacon/{slot.name}" + (f"/{r.subject}" if r.subject else ""), r.data) for r in out]
        try:
            self.emit(events)
        except OutboxUnavailable as exc:  # a full disk: counted here, logged once by the outbox
            slot.errors += 1
            slot.last_error = f"not queued: {exc}"
            log.debug("beacon %s: its reports were not queued: %s", slot.name, exc)
            return False
        except (ReactordError, TypeError, ValueError) as exc:  # too large, refused, or not packable
            slot.errors += 1
            slot.last_error = f"not queued: {exc}"
            log.warning("beacon %s: its reports were not queued: %s", slot.name, exc)
            return False
        slot.emitted += len(out)
        return True

    # -- what functions (beacons.*) can do ------------------------------------------------------

    def listing(self) -> list[dict[str, Any]]:
        return [slot.public() for slot in self.slots.values()]

    def _slot(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            raise KeyError(f"no beacon {name!r} (have: {', '.join(sorted(self.slots)) or 'none'})")
        return slot

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        slot = self._slot(name)
        slot.enabled = enabled
        slot.wake.set()
        return slot.public()

    async def test(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Poll a beacon once and return its reports as (tag, data), sending nothing and
        changing nothing of the running beacon's state (``reactord call beacons.test``)."""
        slot = self._slot(name)
        try:
            async with asyncio.timeout(slot.timeout):
                reports = await asyncio.to_thread(slot.beacon.poll)
        except TimeoutError:
            raise RuntimeError(f"beacon {name} timed out after {slot.timeout:g}s") from None
        return [(f"beacon/{slot.name}" + (f"/{r.subject}" if r.subject else ""), r.data) for r in reports]

    async def fire_now(self, name: str) -> list[dict[str, Any]]:
        reports = await self.poll(self._slot(name), force=True)
        return [{"subject": r.subject, "data": r.data} for r in reports]
