"""The master's command channel: a CURVE ROUTER that minions' DEALERs connect to.

Messages in: ``hello`` (read from any key), ``heartbeat``, ``return`` (accepted keys only).
Messages out: ``welcome``, ``pong``, ``return_ack``, ``command`` and ``ack`` (of events).

Routing is by authenticated identity: a route from a minion to the ROUTER routing id of its
connection is learned only from a message whose ZAP User-Id is that minion's accepted key,
and it is forgotten when the key is revoked. The routing id a peer chose is never trusted
as a name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import zmq
import zmq.asyncio

from reactord.base.stats import Stats
from reactord.keystore import ACCEPTED, PENDING, KeyStore
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, StorageDamaged, StorageFull
from reactord.protocol.keys import CurveKeys, z85_decode
from reactord.zap import CURVE_DOMAIN

log = logging.getLogger("reactord.link")


class LinkHandler(Protocol):
    """What the master does with messages from the command channel."""

    def on_hello(self, key: bytes, hello: m.Hello) -> m.Welcome: ...

    def on_message(self, minion_id: str, message: m.Message) -> m.Message | None: ...


def curve_server_socket(
    ctx: zmq.asyncio.Context, kind: int, keys: CurveKeys, max_message_size: int, queue_bytes: int
) -> zmq.asyncio.Socket:
    """A socket that is a CURVE server whose handshakes the ZAP handler decides.

    libzmq bounds its queues in messages, not bytes: each connection may queue at most
    ``queue_bytes`` worth of the largest message (and at least 4 messages); what comes beyond
    is dropped (PUB/SUB) or waits in the sender (ROUTER), never held by the master.
    """
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.curve_server = True
    sock.curve_secretkey = keys.secret_z85
    sock.curve_publickey = keys.public_z85
    sock.zap_domain = CURVE_DOMAIN
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
    sock.setsockopt(zmq.RCVHWM, max(4, queue_bytes // max_message_size))
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)  # drop connections that went silent (half-open TCP)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
    return sock


def bound_endpoint(sock: zmq.Socket[Any]) -> str:
    """The address a socket was last bound to (the port the OS chose when asked for port 0)."""
    return bytes(sock.getsockopt(zmq.LAST_ENDPOINT)).decode()


class CommandLink:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        keys: CurveKeys,
        keystore: KeyStore,
        stats: Stats,
        handler: LinkHandler,
        *,
        max_message_size: int,
        queue_bytes: int = 64 << 20,
    ) -> None:
        self.keystore = keystore
        self.stats = stats
        self.handler = handler
        self.max_message_size = max_message_size
        self.socket = curve_server_socket(ctx, zmq.ROUTER, keys, max_message_size, queue_bytes)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A reconnecting minion takes its routing id over from a connection that is dead but
        # not yet noticed: safe, because that id is a secret only it and we know (see below).
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._routes: dict[bytes, bytes] = {}  # public key -> routing id of its connection

    def bind(self, endpoint: str) -> None:
        self.socket.bind(endpoint)
        log.info("commands to minions on %s (CURVE)", bound_endpoint(self.socket))

    def close(self) -> None:
        self.socket.close(linger=0)

    def connected(self, minion_id: str) -> bool:
        key = self.keystore.accepted_key(minion_id)
        return key is not None and key in self._routes

    def forget(self, key: bytes) -> None:
        """Stop routing to a key (revoked, deleted)."""
        self._routes.pop(key, None)

    def send(self, minion_id: str, message: m.Message) -> bool:
        """Send to an accepted, connected minion now; False when there is no live route."""
        key = self.keystore.accepted_key(minion_id)
        if key is None:
            return False
        return self.send_to_key(key, message)

    def send_to_key(self, key: bytes, message: m.Message) -> bool:
        rid = self._routes.get(key)
        if rid is None:
            return False
        if self._send_now(rid, message.to_wire()):
            return True
        self._routes.pop(key, None)  # the connection is gone (or hopelessly behind)
        return False

    def _send_now(self, rid: bytes, data: bytes) -> bool:
        # A NOBLOCK send on a zmq.asyncio socket completes (or fails) before returning.
        future: asyncio.Future[None] = self.socket.send_multipart([rid, data], flags=zmq.NOBLOCK)  # type: ignore[assignment]
        error = future.exception() if future.done() else None
        if error is None:
            return True
        if isinstance(error, zmq.Again):
            self.stats.incr("send.full")
        elif not (isinstance(error, zmq.ZMQError) and error.errno == zmq.EHOSTUNREACH):
            raise error
        return False

    async def serve(self) -> None:
        handled = 0
        while True:
            handled += 1
            if handled % 64 == 0:
                await asyncio.sleep(0)  # ready messages never yield: let other tasks run under a flood
            frames = await self.socket.recv_multipart(copy=False)
            try:
                reply = self._receive(frames)
            except StorageDamaged:
                raise
            except StorageFull:
                self.stats.incr("drop.storage")  # not acknowledged: the minion sends it again
                continue
            except Exception:  # a bug: this message is dropped, counted and logged; the loop goes on
                self.stats.incr("drop.error")
                log.exception("dropped a message on the command channel that could not be handled")
                continue
            if reply is not None:
                rid, message = reply
                if not self._send_now(rid, message.to_wire()):
                    log.debug("a %s reply was not sent: the peer is gone or not reading", message.kind)

    def _receive(self, frames: list[zmq.Frame]) -> tuple[bytes, m.Message] | None:
        self.stats.incr("link.received")
        if len(frames) != 2:
            self.stats.incr("drop.malformed")
            return None
        rid, frame = frames[0].bytes, frames[1]
        try:
            key = z85_decode(str(frame.get("User-Id")))
        except (ValueError, zmq.ZMQError):
            self.stats.incr("drop.unauthenticated")
            return None
        try:
            message = m.decode(frame.bytes, max_size=self.max_message_size)
        except DecodeError as exc:
            self.stats.incr("drop.malformed")
            log.warning("dropped a malformed message on the command channel: %s", exc)
            return None
        entry = self.keystore.lookup(key)
        if isinstance(message, m.Hello):
            welcome = self.handler.on_hello(key, message)
            if welcome.status in (ACCEPTED, PENDING):
                self._routes[key] = rid  # bounded: accepted keys plus max_pending
            else:
                self._routes.pop(key, None)
            return rid, welcome
        if entry is None or entry.state != ACCEPTED:
            self.stats.incr("drop.unauthenticated")
            return None
        self._routes[key] = rid
        answer = self.handler.on_message(entry.id, message)
        return (rid, answer) if answer is not None else None
