"""The path of every accepted event: dedupe, log, acknowledge, republish, hand to the reactor.

Minion batches arrive through ``offer`` (checked, deduplicated on (source, epoch, seq), kept
in order per source). ``commit`` has the reactor decide them, then writes them in one
transaction with their decisions and the delivery state they advance; only then are they
acknowledged, republished and their actions dispatched. Events the
master makes itself (keys, presence, jobs, ``event fire``) go through ``emit``: the same
log, bus and reactor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reactord.bus import Bus
from reactord.protocol import codec
from reactord.protocol.errors import TagError
from reactord.protocol.events import Event, check_data
from reactord.protocol.ids import new_id, new_ids
from reactord.protocol.messages import EventBatch
from reactord.protocol.tags import minion_prefix, validate_tag
from reactord.stats import Stats
from reactord.store.events import EventLog
from reactord.store.state import StateTable

log = logging.getLogger("reactord.events")

Pairs = list[tuple[Event, Event | None]]


class Decider(Protocol):
    """The reactor, as the pipeline sees it: decide before the write, act after it."""

    def decide(self, pairs: Pairs) -> tuple[dict[str, bytes], list[Any]]:
        """Each event with the one it follows -> (packed decisions by event id, what fired)."""
        ...

    def dispatch(self, fired: list[Any]) -> None: ...


AckSender = Callable[[str, str, int], None]


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
        cause_of: Callable[[str, str], tuple[str | None, int]] = lambda source, causation: (None, 0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = event_log
        self.state = state
        self.bus = bus
        self.stats = stats
        self.send_ack = send_ack
        self.cause_of = cause_of
        self.clock = clock
        self.decider: Decider | None = None  # the reactor, set by the master
        self.epoch = os.urandom(8).hex()  # the master's own emitter epoch, new at each start
        self._seq = 0
        self._last: dict[tuple[str, str], int] = event_log.delivery()
        self._pending = _Pending()

    # -- minion events ------------------------------------------------------------------------

    def offer(self, source: str, batch: EventBatch) -> None:
        """Check one batch from an authenticated minion; what is new waits for ``commit``."""
        key = (source, batch.epoch)
        last = self._pending.delivery.get(key, self._last.get(key))
        if last is None:
            if not any(k[0] == source for k in self._last):
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
            self._pending.events.append(
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
        self._pending.delivery[key] = last
        if received:
            self.stats.incr("events.received", received)
        if duplicates:
            self.stats.incr("events.duplicate", duplicates)

    def commit(self) -> list[Event]:
        """Log what ``offer`` accepted, then acknowledge, republish and hand it on."""
        pending, self._pending = self._pending, _Pending()
        if not pending.delivery:
            return []
        new_epochs = [k for k in pending.delivery if k not in self._last]
        pairs, state_rows = self.state.advance(pending.events)
        decided, fired = self.decider.decide(pairs) if self.decider else ({}, [])
        self.log.append(pending.events, pending.delivery, state_rows, decided)
        for source, epoch in new_epochs:
            self.log.forget_epochs(source, epoch)
            for stale in [k for k in self._last if k[0] == source and k[1] != epoch]:
                del self._last[stale]
        self._last.update(pending.delivery)
        self.stats.incr("events.accepted", len(pending.events))
        self.stats.event_rate.add(len(pending.events), self.clock())
        for (source, epoch), seq in pending.delivery.items():
            self.send_ack(source, epoch, seq)
        self._publish(pending.events, fired)
        return pending.events

    # -- events of the master itself ------------------------------------------------------------

    def emit(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        source: str = "master",
        causation: str | None = None,
        depth: int = 0,
    ) -> Event:
        validate_tag(tag)
        packed = check_data(data)  # EncodeError before anything moves: no gap in the seqs
        now = self.clock()
        self._seq += 1
        event = Event(
            id=new_id(now),
            tag=tag,
            source=source,
            time=now,
            data=data,
            seq=self._seq,
            epoch=self.epoch,
            causation=causation,
            depth=depth,
            received=now,
            packed=packed,
        )
        pairs, state_rows = self.state.advance([event])
        decided, fired = self.decider.decide(pairs) if self.decider else ({}, [])
        self.log.append([event], {}, state_rows, decided)
        self.stats.incr("events.accepted")
        self.stats.event_rate.add(1, now)
        self._publish([event], fired)
        return event

    def _publish(self, events: list[Event], fired: list[Any]) -> None:
        self.bus.publish(events)
        if fired and self.decider is not None:
            self.decider.dispatch(fired)
