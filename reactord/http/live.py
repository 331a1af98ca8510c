"""``GET /api/v1/live``: the events the master logs, as they are logged (Server-Sent Events).

Each stream has its own queue, bounded in bytes (``QUEUE_BYTES``): the master hands it the
events that match its tag glob (each event made into its message once, for every stream)
and never waits for it; a client too slow to read them loses the ones that do not fit and
is told how many (an ``event: dropped`` message). At most ``http.live_clients`` streams are
open at once (503 beyond), ``PER_TOKEN`` per token (429 beyond). Every 15 s a comment line
keeps proxies from closing an idle stream, and the stream's token is checked again, busy or
idle: revoking it, or its expiry, ends the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from reactord.base import jsonable
from reactord.base.stats import Stats
from reactord.http.auth import Guard, Principal, Refusal
from reactord.protocol.errors import TagError
from reactord.protocol.events import Event
from reactord.protocol.tags import tag_matches, validate_pattern

log = logging.getLogger("reactord.http")

QUEUE_BYTES = 4 << 20
#: Live streams one token may hold open (so that one holder cannot take them all).
PER_TOKEN = 8
KEEPALIVE = 15.0
#: A write a client does not take within this ends its stream.
WRITE_TIMEOUT = 30.0


class Listeners(Protocol):
    """Where the master's loop hands its logged events (``reactord.bus.Bus.listeners``)."""

    listeners: set[Callable[[list[Event]], None]]


class _Queue:
    def __init__(self, pattern: str | None) -> None:
        self.pattern = pattern
        self.items: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def offer(self, frame: bytes) -> None:
        if self.size + len(frame) > QUEUE_BYTES:
            self.dropped += 1
        else:
            self.items.append(frame)
            self.size += len(frame)
        self.ready.set()

    def take(self) -> tuple[bytes, int]:
        """What is queued, as one chunk, and how many events did not fit since the last take."""
        out, dropped = b"".join(self.items), self.dropped
        if dropped:
            out += f"event: dropped\ndata: {dropped}\n\n".encode()
            self.dropped = 0
        self.items.clear()
        self.size = 0
        self.ready.clear()
        return out, dropped


class Live:
    def __init__(self, bus: Listeners, guard: Guard, max_clients: int, stats: Stats) -> None:
        self.bus = bus
        self.guard = guard
        self.max_clients = max_clients
        self.stats = stats
        self.queues: set[_Queue] = set()  # one per open stream
        self.per_token: dict[str, int] = {}  # token id -> its streams open

    @property
    def open(self) -> int:
        return len(self.queues)

    def _fan_out(self, events: list[Event]) -> None:
        """The bus's listener while any stream is open: each event made into its message
        once, however many streams take it."""
        for event in events:
            frame = b""
            for queue in self.queues:
                if queue.pattern is not None and not tag_matches(queue.pattern, event.tag):
                    continue
                if not frame:
                    line = jsonable.to_json(event.public() | {"received": event.received})
                    frame = f"event: event\nid: {event.id}\ndata: {line}\n\n".encode()
                queue.offer(frame)

    async def stream(self, request: web.Request, principal: Principal) -> web.StreamResponse:
        pattern = request.query.get("tag") or None
        if pattern is not None:
            try:
                validate_pattern(pattern)
            except TagError as exc:
                raise Refusal(400, str(exc)) from None
        if self.open >= self.max_clients:
            raise Refusal(503, f"{self.open} live streams are open, the most allowed", retry_after=5)
        token = principal.token.id
        if self.per_token.get(token, 0) >= PER_TOKEN:
            raise Refusal(
                429, f"this token has {PER_TOKEN} live streams open, the most allowed", retry_after=5
            )
        queue = _Queue(pattern)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        self.queues.add(queue)
        self.per_token[token] = self.per_token.get(token, 0) + 1
        self.bus.listeners.add(self._fan_out)
        try:
            await response.prepare(request)
            await response.write(b": live\n\n")  # the stream is open: what is logged from now on comes
            checked = time.monotonic()
            while True:
                try:
                    await asyncio.wait_for(queue.ready.wait(), KEEPALIVE)
                    chunk, dropped = queue.take()
                    if dropped:
                        self.stats.incr("http.live_dropped", dropped)
                except TimeoutError:
                    chunk = b": keepalive\n\n"
                if time.monotonic() - checked >= KEEPALIVE:  # busy or idle, every 15 s:
                    self.guard.identify(request)  # a revoked or expired token ends the stream
                    checked = time.monotonic()
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await response.write(chunk)
        except (Refusal, TimeoutError, ConnectionResetError) as exc:
            log.info("live stream of %s ended: %s", principal.label, exc)
        finally:
            self.queues.discard(queue)
            if not self.queues:
                self.bus.listeners.discard(self._fan_out)
            self.per_token[token] -= 1
            if not self.per_token[token]:
                del self.per_token[token]
        return response
