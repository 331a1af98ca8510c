"""The event socket: a CURVE SUB where minions' PUBs deliver batches of events.

Every frame is authenticated against the live key store (ZAP ran once, at connect); frames
from keys that are not accepted, malformed frames and oversized frames are dropped and
counted. Frames already queued are taken together and committed in one transaction.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from reactord.keystore import KeyStore
from reactord.link import curve_server_socket
from reactord.pipeline import EventPipeline
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError
from reactord.protocol.keys import CurveKeys, z85_decode
from reactord.stats import Stats

log = logging.getLogger("reactord.ingest")

#: Frames taken per commit at most (each holds up to a few hundred events).
DRAIN = 64


class Ingest:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        keys: CurveKeys,
        keystore: KeyStore,
        pipeline: EventPipeline,
        stats: Stats,
        *,
        max_message_size: int,
    ) -> None:
        self.keystore = keystore
        self.pipeline = pipeline
        self.stats = stats
        self.max_message_size = max_message_size
        self.socket = curve_server_socket(ctx, zmq.SUB, keys, max_message_size)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.setsockopt(zmq.RCVHWM, 10_000)

    def bind(self, endpoint: str) -> None:
        self.socket.bind(endpoint)

    def close(self) -> None:
        self.socket.close(linger=0)

    async def serve(self) -> None:
        while True:
            frame = await self.socket.recv(copy=False)
            self._take(frame)
            for _ in range(DRAIN - 1):
                if not int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    break
                self._take(await self.socket.recv(copy=False))
            self.pipeline.commit()
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
        try:
            batch = m.EventBatch.from_wire(frame.bytes, max_size=self.max_message_size)
        except DecodeError as exc:
            self.stats.incr("drop.malformed")
            log.debug("dropped a malformed frame from %s: %s", source, exc)
            return
        self.pipeline.offer(source, batch)
