"""The path of every accepted event: dedupe, log, acknowledge, republish, hand to the reactor.

Minion batches arrive through ``offer`` (checked, deduplicated on (source, epoch, seq), kept
in order per source). ``commit`` has the reactor decide them, then writes them in one
transaction with their decisions, the rule state and the actions those decided, and the
delivery state they advance; only then are they acknowledged, republished and their actions
dispatched. Events the master makes itself (keys, presence, jobs, ``event fire``, webhooks)
go through ``emit``: the same log, bus and reactor.

A write that fails changes nothing: the state cache and the rule state go back to what the
database holds, and nothing is acknowledged, so minions keep the events in their outboxes.
A full disk (``StorageFull``) puts the pipeline in a degraded state: one error line, ingest
waits with backoff (``ready``), the master's own events wait in a bounded queue, and the
first write that succeeds ends it by itself. Any other write error (a value the database
refuses despite the checks at the protocol boundary) is isolated: the batch is written event
by event and the event that cannot be stored is dropped, counted and acknowledged, so it
can never come back as a poison batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reactord.base.stats import Stats
from reactord.bus import Bus
from reactord.protocol import codec
from reactord.protocol.errors import StorageDamaged, StorageFull, TagError
from reactord.protocol.events import Event, check_data
from reactord.protocol.ids import new_id, new_ids
from reactord.protocol.messages import EventBatch
from reactord.protocol.tags import minion_prefix, validate_tag
from reactord.store.eventlog import EventLog, Writes
from reactord.store.statetable import StateTable, cleared
from reactord.writehealth import WriteHealth

log = logging.getLogger("reactord.events")

Pairs = list[tuple[Event, Event | None]]

#: The master's own events kept while the disk is full, at most (then the oldest are lost).
MAX_HELD_BYTES = 16 << 20


class Decided(Protocol):
    """What the reactor decided for a batch: written with it."""

    decisions: dict[str, bytes]
    writes: Writes


class Decider(Protocol):
    """The reactor, as the pipeline sees it: decide before the write, act after it."""

    def decide(self, pairs: Pairs) -> Any:
        """Each event with the one it follows -> a ``Decided`` to write with the events."""
        ...

    def committed(self, decided: Any) -> None:
        """The write succeeded: act on what was decided."""
        ...

    def rolled_back(self, decided: Any) -> None:
        """The write failed: forget what was decided (the rule state as the database has it)."""
        ...

    def room(self) -> int:
        """How many firings the reactor can take now (its action queue's free places)."""
        ...

    async def wait_room(self) -> None:
        """Return when the reactor can take more events (its action queue has room)."""
        ...


AckSender = Callable[[str, str, int], None]


class Forwarder(Protocol):
    """Cluster mode: where events go instead of the local log (the engine's stream). They
    come back, from every master, through ``apply``; minions are acknowledged by the
    forwarder once the engine has stored their events."""

    def send(self, events: list[Event], delivery: dict[tuple[str, str], int]) -> None: ...

    def busy(self) -> bool:
        """Whether ingest must wait (too much is on its way to the engine)."""
        ...

    async def wait(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    events: list[Event] = field(default_factory=list)
    delivery: dict[tuple[str, str], int] = field(default_factory=dict)


class EventPipeline:
    def __init__(
        self,
        event_log: EventLog,
        state: StateTable,
        bus: Bus,
        stats: Stats,
        *,
        send_ack: AckSender,
        decider: Decider | None = None,
        cause_of: Callable[[str, str], tuple[str | None, int]] = lambda source, causation: (None, 0),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = event_log
        self.state = state
        self.bus = bus
        self.stats = stats
        self.send_ack = send_ack
        self.cause_of = cause_of
        self.clock = clock
        self.monotonic = monotonic
        self.decider = decider  # the reactor (None: events are logged, nothing decides on them)
        self.epoch = os.urandom(8).hex()  # the master's own emitter epoch, new at each start
        self._seq = 0
        self._last: dict[tuple[str, str], int] = event_log.delivery()
        self._pending = _Pending()
        self._held: deque[Event] = deque()
        self._held_bytes = 0
        self.health = WriteHealth(stats, clock=clock, monotonic=monotonic)
        #: Cluster mode: events go to the engine, and come back through ``apply``.
        self.forwarder: Forwarder | None = None
        self._forwarded: dict[tuple[str, str], int] = {}  # sent to the engine, not yet applied

    # -- minion events ------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        return len(self._pending.events)

    @property
    def room(self) -> int:
        """Events ingest may still take into this commit: the action queue's free places less
        the events already taken. An event may fire several rules, so the queue can pass its
        bound by one frame's firings; the master's own events never wait."""
        if self.decider is None or self.forwarder is not None:
            return 1 << 30  # cluster mode: the forwarder's bound holds ingest (must_wait)
        return self.decider.room() - len(self._pending.events)

    @property
    def held(self) -> int:
        """The master's own events waiting for the disk."""
        return len(self._held)

    def offer(self, source: str, batch: EventBatch) -> None:
        """Check one batch from an authenticated minion; what is new waits for ``commit``.

        One pass over the batch on the hot path (it runs for every frame, tens of thousands of
        events a second), so it is kept in one piece past 60 lines: dedupe, gap, namespace,
        ids and packing, each a few lines in order.
        """
        key = (source, batch.epoch)
        last = self._pending.delivery.get(key)
        if last is None:
            last = self._last.get(key)
            if (forwarded := self._forwarded.get(key)) is not None and (last is None or forwarded > last):
                last = forwarded
        if last is None:
            if not any(k[0] == source for k in (*self._last, *self._pending.delivery)):
                log.info("first events from %s (outbox %s)", source, batch.epoch, extra={"source": source})
            else:
                log.info("%s has a new outbox %s", source, batch.epoch, extra={"source": source})
            last = batch.base - 1
        elif batch.base > last + 1:
            lost = batch.base - 1 - last
            self.stats.incr("events.lost_by_minion", lost)
            log.warning(
                "%s dropped %d events from its full outbox before they reached the master",
                source,
                lost,
                extra={"source": source},
            )
            last = batch.base - 1
        now = self.clock()
        prefix = minion_prefix(source)
        ids = iter(new_ids(len(batch.events), now))
        received = duplicates = 0
        accepted: list[Event] = []  # taken whole at the end: a batch that raises leaves no trace
        for seq, tag, when, data, claimed in batch.events:
            if seq <= last:
                duplicates += 1
                continue
            if seq != last + 1:
                self.stats.incr("events.out_of_order")  # a gap: wait for the re-send
                break
            last = seq
            received += 1
            try:
                validate_tag(tag)
            except TagError:
                self.stats.incr("drop.bad_tag")
                continue
            if not tag.startswith(prefix) or len(tag) == len(prefix):
                self.stats.incr("drop.namespace")
                log.warning(
                    "dropped %s from %s: outside minion/%s/",
                    tag,
                    source,
                    source,
                    extra={"source": source, "tag": tag},
                )
                continue
            # a job's event.fire names the job: its depth carries on, so loops through minions stop
            causation, depth = self.cause_of(source, claimed) if claimed else (None, 0)
            accepted.append(
                Event(
                    id=next(ids),
                    tag=tag,
                    source=source,
                    time=float(when),
                    data=data,
                    seq=seq,
                    epoch=batch.epoch,
                    causation=causation,
                    depth=depth,
                    received=now,
                    packed=codec.pack(data),
                )
            )
        self._pending.events.extend(accepted)
        self._pending.delivery[key] = last
        if received:
            self.stats.incr("events.received", received)
        if duplicates:
            self.stats.incr("events.duplicate", duplicates)

    def commit(self) -> list[Event]:
        """Log what ``offer`` accepted, then acknowledge, republish and hand it on.

        Returns the events written; on a full disk nothing is written or acknowledged (the
        minions send them again) and the pipeline waits before the next try (``ready``).
        """
        pending, self._pending = self._pending, _Pending()
        if not pending.delivery:
            return []
        if self.forwarder is not None:
            self._forwarded.update(pending.delivery)
            self.forwarder.send(pending.events, pending.delivery)
            return pending.events
        if self._held:
            self.flush_held()
        try:
            self._write(pending.events, pending.delivery)
        except StorageFull as exc:
            self._storage_failed(exc)
            return []
        except StorageDamaged:
            raise
        except Exception as exc:  # the database refused a value the checks let through: isolate it
            return self._isolate(pending, exc)
        return pending.events

    def _isolate(self, pending: _Pending, error: Exception) -> list[Event]:
        """Write a batch that failed event by event; drop (and acknowledge) what cannot be stored."""
        log.error(
            "a batch of %d events could not be written (%r): writing them one by one",
            len(pending.events),
            error,
        )
        written: list[Event] = []
        for event in pending.events:
            key = (event.source, event.epoch)
            try:
                self._write([event], {key: event.seq})
            except StorageFull as exc:
                self._storage_failed(exc)
                return written
            except StorageDamaged:
                raise
            except Exception as exc:
                self.stats.incr("drop.unstorable")
                log.error(
                    "dropped event %d of %s (%s): the database refused it: %r",
                    event.seq,
                    event.source,
                    event.tag,
                    exc,
                    extra={"source": event.source, "tag": event.tag},
                )
                self._write([], {key: event.seq})  # acknowledged: it must never come back
            else:
                written.append(event)
        self._write([], pending.delivery)  # what the batch dropped at the door (tags) is delivered too
        return written

    # -- events of the master itself ------------------------------------------------------------

    def emit(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        source: str = "master",
        causation: str | None = None,
        depth: int = 0,
        action: str | None = None,
        hold: bool = False,
    ) -> Event:
        """Log, decide and republish one event of the master's.

        On a full disk this raises ``StorageFull``, unless ``hold``: the master's own events
        (keys, presence, jobs) then wait in a bounded queue and are written when space returns.
        """
        return self.emit_many(
            [(tag, data)], source=source, causation=causation, depth=depth, action=action, hold=hold
        )[0]

    def emit_many(
        self,
        items: list[tuple[str, dict[str, Any]]],
        *,
        source: str = "master",
        causation: str | None = None,
        depth: int = 0,
        action: str | None = None,
        hold: bool = False,
        writes: Callable[[list[Event]], Writes] | None = None,
    ) -> list[Event]:
        """``emit`` for several events, written in one transaction (a webhook's alerts).

        ``writes`` makes, from the events, more rows for that transaction (a webhook's dedupe
        keys); it is for events that are not held (``hold`` False). Past 60 lines because the
        write, its rollback and the held path share the events' state and read best together.
        """
        packed = []
        for tag, data in items:
            validate_tag(tag)
            packed.append(check_data(data))  # EncodeError before anything moves: no gap in the seqs
        now = self.clock()
        ids = new_ids(len(items), now) if len(items) > 1 else [new_id(now)]
        events = []
        for (tag, data), blob, event_id in zip(items, packed, ids, strict=True):
            self._seq += 1
            events.append(
                Event(
                    id=event_id,
                    tag=tag,
                    source=source,
                    time=now,
                    data=data,
                    seq=self._seq,
                    epoch=self.epoch,
                    causation=causation,
                    depth=depth,
                    received=now,
                    action=action,
                    packed=blob,
                )
            )
        if self.forwarder is not None:
            if writes is not None:  # a webhook's dedupe keys: this master's, written now
                self.log.append([], {}, writes=writes(events))
            self.forwarder.send(events, {})  # written when the engine's stream brings it back
            return events
        if self._held and not (hold and self.storage_error is not None):
            self.flush_held()
        if hold and self._held:
            self._hold(events)  # behind the ones already waiting: the log keeps their order
            return events
        try:
            self._write(events, {}, writes(events) if writes is not None else None)
        except StorageFull as exc:
            self._storage_failed(exc)
            if not hold:
                if self._seq == events[-1].seq:
                    self._seq -= len(events)
                raise
            self._hold(events)
        except StorageDamaged:
            raise
        except Exception:
            if not hold:
                raise  # the caller answers it (the CLI, a webhook, an action's try)
            # the master's own event (presence, keys, jobs): its loop must go on
            self.stats.incr("drop.unstorable", len(events))
            log.exception("could not log the master's event %s", events[0].tag, extra={"tag": events[0].tag})
        return events

    def made_by(self, causation: str, action_id: str) -> Event | None:
        """The event a ``fire`` action made (caused by ``causation``), if it made one."""
        return self.log.by_action(causation, action_id)

    def _hold(self, events: list[Event]) -> None:
        for event in events:
            self._held.append(event)
            self._held_bytes += len(event.packed_data())
        while self._held_bytes > MAX_HELD_BYTES and len(self._held) > 1:
            lost = self._held.popleft()
            self._held_bytes -= len(lost.packed_data())
            self.stats.incr("events.lost_storage")
            log.error("the disk is still full: lost the master's event %s", lost.tag, extra={"tag": lost.tag})

    def flush_held(self) -> int:
        """Write the master's events that waited for space; how many were written."""
        if not self._held or self.health.wait() > 0:
            return 0
        events = list(self._held)
        try:
            self._write(events, {})
        except StorageFull as exc:
            self._storage_failed(exc)
            return 0
        self._held.clear()
        self._held_bytes = 0
        return len(events)

    # -- cluster mode: what the engine's stream brings back ---------------------------------------

    def unforward(self, source: str, epoch: str) -> None:
        """The engine did not take events of (source, epoch): take them again when resent."""
        self._forwarded.pop((source, epoch), None)

    def fresh(self, events: list[Event], delivery: dict[tuple[str, str], int]) -> list[Event]:
        """Of a minion batch from the stream, the events not applied yet (a batch is in the
        stream more than once when a minion sent it again, to this master or another);
        ``delivery`` (the state of the records before it, not applied yet) is advanced."""
        out = []
        for event in events:
            key = (event.source, event.epoch)
            last = delivery.get(key, self._last.get(key, 0))
            if event.seq > last:
                out.append(event)
                delivery[key] = event.seq
        return out

    def apply(
        self, events: list[Event], delivery: dict[tuple[str, str], int], extra: Writes, *, decide: bool = True
    ) -> None:
        """Log, decide and republish events from the engine's stream (their edge master has
        acknowledged them already; ``decide`` False: events imported from a single master,
        decided there). Raises, with nothing changed, when they cannot be written; the caller
        tries again."""
        self._write(events, delivery, extra, ack=False, decide=decide)
        for key, seq in delivery.items():
            if self._forwarded.get(key, seq + 1) <= seq:
                del self._forwarded[key]

    # -- writing ---------------------------------------------------------------------------------

    def _write(
        self,
        events: list[Event],
        delivery: dict[tuple[str, str], int],
        extra: Writes | None = None,
        *,
        ack: bool = True,
        decide: bool = True,
    ) -> None:
        """Decide and write ``events`` with the delivery state they advance (and ``extra``
        rows); on success acknowledge, republish and act; on failure undo what deciding
        changed, and raise."""
        new_epochs = [k for k in delivery if k not in self._last]
        pairs, state_rows = self.state.advance(events)
        decided = self.decider.decide(pairs) if self.decider is not None and decide else None
        writes: Writes = list(decided.writes) if decided is not None else []
        if cleared_rows := cleared(events):  # a resolved alert's row goes
            writes.append((StateTable.CLEAR, cleared_rows))
        if extra:
            writes.extend(extra)
        if new_epochs:
            writes.append(("DELETE FROM delivery WHERE source=? AND epoch<>?", new_epochs))
        try:
            self.log.append(
                events, delivery, state_rows, decided.decisions if decided is not None else None, writes
            )
        except BaseException:
            self.state.forget(events)
            if decided is not None and self.decider is not None:
                self.decider.rolled_back(decided)
            raise
        self._storage_ok()
        for source, epoch in new_epochs:
            for stale in [k for k in self._last if k[0] == source and k[1] != epoch]:
                del self._last[stale]
        self._last.update(delivery)
        if events:
            self.stats.incr("events.accepted", len(events))
            self.stats.event_rate.add(len(events), self.clock())
        if ack:
            for (source, epoch), seq in delivery.items():
                self.send_ack(source, epoch, seq)
        self.bus.publish(events)
        if decided is not None and self.decider is not None:
            self.decider.committed(decided)

    # -- the state of the storage ----------------------------------------------------------------

    @property
    def storage_error(self) -> str | None:
        """Why writes fail (the disk is full), or None while they succeed."""
        return self.health.error

    @property
    def storage_since(self) -> float:
        return self.health.since

    def _storage_failed(self, error: StorageFull) -> None:
        self.health.failed(error)

    def _storage_ok(self) -> None:
        self.health.succeeded(len(self._held))

    def check_storage(self) -> None:
        """Called by the master's tick: end a full-disk episode that has been quiet long
        enough, trying a small write when nothing else wrote since the last failure."""
        quiet = self.health.quiet_without_success()
        if quiet is None:
            return
        if quiet:
            try:
                self.log.probe()
            except StorageFull as exc:
                self._storage_failed(exc)
                return
        self._storage_ok()

    def must_wait(self) -> bool:
        """Whether ingest must wait (``ready``) before taking more: a write failed recently,
        or the reactor has no room. Checked without awaiting, on every turn of the loop."""
        if self.forwarder is not None:
            return self.forwarder.busy()
        return self.health.backing_off() or (self.decider is not None and self.decider.room() <= 0)

    async def ready(self) -> None:
        """Wait until a write may be tried (after a storage failure's backoff) and the reactor
        has room for more (its action queue): how ingest slows instead of refusing."""
        if self.forwarder is not None:
            await self.forwarder.wait()
            return
        wait = self.health.wait()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.decider is not None:
            await self.decider.wait_room()
