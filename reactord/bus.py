"""The master's local bus: every accepted event republished on an owner-only ipc PUB socket.

Watchers (``reactord event watch``, plugins) subscribe to it. A watcher proves its
subscription is live with a probe: it asks the master (control socket) to publish a token
and waits to see it, so no event after that point is missed to a slow join.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.asyncio

from reactord.protocol import codec
from reactord.protocol.events import Event

log = logging.getLogger("reactord.bus")

#: What one watcher that stops reading may hold queued in the master, at most (by the largest
#: event; a watcher further behind loses events, the master never waits for it).
WATCHER_QUEUE_BYTES = 256 << 20


class Bus:
    def __init__(self, ctx: zmq.asyncio.Context, path: Path, max_event_bytes: int = 1 << 20) -> None:
        self.path = path
        # A plain (blocking-API) XPUB in the same context: it only sends, NOBLOCK, and reads the
        # subscriptions, so that nothing is packed for the bus while nobody watches.
        self.socket: zmq.Socket[bytes] = zmq.Context.shadow(ctx.underlying).socket(zmq.XPUB)
        self._topics: set[bytes] = set()  # the prefixes someone is subscribed to
        #: In-process watchers (the HTTP API's live streams), called with each batch on the
        #: master's loop; each must return at once (queue, never wait).
        self.listeners: set[Callable[[list[Event]], None]] = set()
        self.socket.setsockopt(zmq.LINGER, 0)
        # a slow watcher loses events, never the master; what waits for it is bounded in bytes
        self.socket.setsockopt(zmq.SNDHWM, max(100, WATCHER_QUEUE_BYTES // max_event_bytes))

    def bind(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            self.socket.bind(f"ipc://{self.path}")
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("local bus on ipc://%s (owner only)", self.path)

    def _poll_subscriptions(self) -> None:
        while True:
            try:
                message = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            # XPUB reports the first subscriber of a topic (\x01 + topic) and the last one
            # leaving it (\x00 + topic), once each: a set of topics is the whole story.
            if message[:1] == b"\x01":
                self._topics.add(message[1:])
            elif message[:1] == b"\x00":
                self._topics.discard(message[1:])

    @property
    def watched(self) -> bool:
        return bool(self._topics)

    def publish(self, events: list[Event]) -> None:
        for listener in list(self.listeners):
            listener(events)
        self._poll_subscriptions()
        if not self.watched:
            return
        for event in events:
            self._send(event.to_bus())

    def probe(self, token: str) -> None:
        self._poll_subscriptions()
        self._send(codec.pack(["probe", token]))

    def _send(self, frame: bytes) -> None:
        try:
            self.socket.send(frame, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB never blocks; a full queue only means a watcher is behind

    def close(self) -> None:
        self.socket.close(linger=0)
        self.path.unlink(missing_ok=True)
