"""Delivering the outbox: batches over CURVE PUB, cumulative acks back, re-sends with backoff.

PUB/SUB drops silently (a slow joiner, a full queue, a reconnect), so nothing here trusts
it: events stay in the outbox until the master acknowledges them over the command channel,
and whatever is not acknowledged in time is sent again, from the first unacknowledged seq,
with a backoff. At most ``window`` events are in flight beyond the last ack.

An ack is never lost to a full disk: the outbox keeps the acknowledged position in memory
and deletes the rows later (this loop retries it), so nothing acknowledged is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import zmq
import zmq.asyncio

from minion.outbox import PURGE_RETRY, Outbox
from reactord.protocol.errors import StorageFull
from reactord.protocol.messages import pack_event_batch

log = logging.getLogger("minion.delivery")

RESEND_FIRST = 1.0
RESEND_MAX = 30.0


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        socket: zmq.asyncio.Socket,
        *,
        ready: Callable[[], bool],
        batch_events: int = 500,
        batch_bytes: int = 256 * 1024,
        window: int = 20_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.socket = socket
        self.ready = ready
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.window = window
        self.acked = outbox.base() - 1
        self.sent = self.acked
        self.batches_sent = 0
        self._wakeup = asyncio.Event()
        self._backoff = RESEND_FIRST
        self.monotonic = monotonic  # how long no ack has made progress
        self._last_progress = monotonic()

    def notify(self) -> None:
        """New events are in the outbox."""
        self._wakeup.set()

    def restart(self) -> None:
        """The link to the master was (re)established: send again from the first unacknowledged."""
        self.sent = self.acked
        self._backoff = RESEND_FIRST
        self._wakeup.set()

    def move_to(self, socket: zmq.asyncio.Socket) -> None:
        """Events now go to another master, through ``socket``: the old one is closed, and the
        in-flight window is reset, so everything not acknowledged is sent again to the new
        master (from the first unacknowledged event, once it has welcomed us)."""
        old, self.socket = self.socket, socket
        old.close(linger=0)
        self.restart()
        self._last_progress = self.monotonic()

    def on_ack(self, epoch: str, seq: int) -> None:
        if epoch != self.outbox.epoch or seq <= self.acked:
            return
        seq = min(seq, self.outbox.next_seq - 1)
        self.outbox.ack(seq)
        self.acked = seq
        self.sent = max(self.sent, seq)
        self._backoff = RESEND_FIRST
        self._last_progress = self.monotonic()
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            self.outbox.purge()  # acknowledged rows a full disk kept; paced by the outbox
            if self.ready() and self.sent - self.acked < self.window and self.sent < self.outbox.next_seq - 1:
                try:
                    sent = await self._send_batch()
                except StorageFull as exc:  # the outbox cannot be read now: try again, never die
                    log.warning("cannot read the outbox: %s; trying again in %gs", exc, RESEND_FIRST)
                    await asyncio.sleep(RESEND_FIRST)
                    continue
                if not sent:
                    await asyncio.sleep(0.01)  # the socket queue is full; let it drain
                continue
            self._wakeup.clear()
            wait = min(self._backoff, PURGE_RETRY) if self.outbox.purge_pending else self._backoff
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            stalled = self.monotonic() - self._last_progress >= self._backoff
            if self.sent > self.acked and stalled:
                log.debug("no ack beyond %d for %.1fs; re-sending", self.acked, self._backoff)
                self.sent = self.acked
                self._last_progress = self.monotonic()
                self._backoff = min(self._backoff * 2, RESEND_MAX)

    async def _send_batch(self) -> bool:
        base = max(self.outbox.base(), self.acked + 1)
        self.acked = base - 1
        rows = self.outbox.read(max(self.sent, self.acked), self.batch_events)
        if not rows:
            return True
        if rows[0].seq == base and len(rows[0].data) + len(rows[0].tag) + 64 > self.batch_bytes:
            # Written under a larger max_message_size: it can never be delivered. Drop it (the
            # master counts it lost when the base moves) rather than block everything behind it.
            log.error("dropping event %d (%s): larger than one message may carry", rows[0].seq, rows[0].tag)
            self.outbox.ack(rows[0].seq)
            return True
        batch: list[tuple[int, str, float, bytes, str | None]] = []
        size = 0
        for row in rows:
            size += len(row.data) + len(row.tag) + 32
            if batch and size > self.batch_bytes:
                break
            batch.append((row.seq, row.tag, row.time, row.data, row.causation))
        frame = pack_event_batch(self.outbox.epoch, base, batch)
        socket = self.socket
        try:
            await socket.send(frame, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        if socket is not self.socket:  # moved to another master meanwhile: it gets all again
            return True
        if self.sent <= self.acked:
            self._last_progress = self.monotonic()
        self.sent = batch[-1][0]
        self.batches_sent += 1
        return True
