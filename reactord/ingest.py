"""The event socket: a CURVE SUB where minions' PUBs deliver batches of events.

Every frame is authenticated against the live key store (ZAP ran once, at connect); frames
from keys that are not accepted, malformed frames and oversized frames are dropped and
counted. A source over its budget (reactord.budget) has its frames dropped before they are
decoded: it is not acknowledged and sends them again later. Frames already queued are taken
together and committed in one transaction. One bad frame never stops the loop: whatever it
raises is counted, logged (rate-limited) and the next frame is read. While the database
cannot be written or the reactor's action queue is full, the loop waits (``ready``) and
frames queue in libzmq up to a bound in bytes, then drop: minions keep them in their outboxes.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from reactord.base.stats import Stats
from reactord.budget import Budgets
from reactord.keystore import KeyStore
from reactord.link import bound_endpoint, curve_server_socket
from reactord.pipeline import EventPipeline
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, StorageDamaged
from reactord.protocol.keys import CurveKeys, z85_decode

log = logging.getLogger("reactord.ingest")

#: Frames taken per commit at most (each holds up to a few hundred events) ...
DRAIN = 64
#: ... and events: one commit never holds the loop for long.
DRAIN_EVENTS = 16_384


class Ingest:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        keys: CurveKeys,
        keystore: KeyStore,
        pipeline: EventPipeline,
        stats: Stats,
        budgets: Budgets,
        *,
        max_message_size: int,
        queue_bytes: int,
    ) -> None:
        self.keystore = keystore
        self.pipeline = pipeline
        self.stats = stats
        self.budgets = budgets
        self.max_message_size = max_message_size
        self.socket = curve_server_socket(ctx, zmq.SUB, keys, max_message_size, queue_bytes)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")

    def bind(self, endpoint: str) -> None:
        self.socket.bind(endpoint)
        log.info("events from minions on %s (CURVE)", bound_endpoint(self.socket))

    def close(self) -> None:
        self.socket.close(linger=0)

    async def serve(self) -> None:
        while True:
            if self.pipeline.must_wait():
                await self.pipeline.ready()
            self._take(await self.socket.recv(copy=False))
            for _ in range(DRAIN - 1):
                if self.pipeline.pending_events >= DRAIN_EVENTS or self.pipeline.room <= 0:
                    break
                if not int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    break
                self._take(await self.socket.recv(copy=False))
            try:
                self.pipeline.commit()
            except StorageDamaged:
                raise
            except Exception:  # a bug: counted and logged, and the next frames are read
                self.stats.incr("drop.error")
                log.exception("a batch of events failed; it is not acknowledged (minions send it again)")
            # A ready message makes `await recv()` return at once, without yielding: under a
            # flood this loop would starve every other task (control, commands) without this.
            await asyncio.sleep(0)

    def _take(self, frame: zmq.Frame) -> None:
        self.stats.incr("frames.received")
        try:
            key = z85_decode(str(frame.get("User-Id")))
        except (ValueError, zmq.ZMQError):
            self.stats.incr("drop.unauthenticated")
            return
        source = self.keystore.accepted_id(key)
        if source is None:
            self.stats.incr("drop.unauthenticated")
            return
        data = frame.bytes
        if not self.budgets.admit(source, len(data)):
            self.stats.incr("drop.over_budget")
            return
        try:
            batch = m.EventBatch.from_wire(data, max_size=self.max_message_size)
        except DecodeError as exc:
            self.stats.incr("drop.malformed")
            log.warning("dropped a malformed frame from %s: %s", source, exc, extra={"source": source})
            return
        self.budgets.charge(source, len(batch.events))
        try:
            self.pipeline.offer(source, batch)
        except Exception:  # a bug: this frame is dropped (not acknowledged), the loop goes on
            self.stats.incr("drop.error")
            log.exception("dropped a batch from %s that could not be read", source, extra={"source": source})
