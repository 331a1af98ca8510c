"""The ZAP handler: decides every CURVE handshake from the live key store.

Unknown and pending keys may connect (so that they can say ``hello``, the only message read
from them); rejected and denied keys are refused at the handshake. The authenticated
User-Id is the Z85 public key, and every received message is checked against the key store
again, because ZAP runs once per connection, not per message.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from reactord.base.stats import Stats
from reactord.keystore import DENIED, REJECTED, KeyStore
from reactord.protocol.keys import z85_encode

log = logging.getLogger("reactord.zap")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
CURVE_DOMAIN = b"reactord"
KEY_DOMAIN = b"reactord-key"


class ZapHandler:
    def __init__(self, ctx: zmq.asyncio.Context, keystore: KeyStore, stats: Stats) -> None:
        self.keystore = keystore
        self.stats = stats
        self.socket = ctx.socket(zmq.REP)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)

    def decide(self, frames: list[bytes]) -> tuple[bytes, bytes, bytes]:
        """(status code, status text, user id) for one ZAP request."""
        domain, address, mechanism = frames[2], frames[3], frames[5]
        credentials = frames[6:]
        if domain == KEY_DOMAIN and mechanism == b"NULL":
            return b"200", b"OK", b""
        if domain != CURVE_DOMAIN or mechanism != b"CURVE" or len(credentials) != 1:
            self.stats.incr("handshake.refused")
            return b"400", b"mechanism not allowed", b""
        key = credentials[0]
        entry = self.keystore.lookup(key)
        if entry is not None and entry.state in (REJECTED, DENIED):
            self.stats.incr("handshake.refused")
            log.info(
                "refused a %s key for %s from %s", entry.state, entry.id, address.decode(errors="replace")
            )
            return b"400", f"key {entry.state}".encode(), b""
        return b"200", b"OK", z85_encode(key).encode("ascii")

    async def serve(self) -> None:
        while True:
            frames = await self.socket.recv_multipart()
            if len(frames) < 6:
                continue  # libzmq only sends well-formed requests; nothing to answer
            code, text, user = self.decide(frames)
            await self.socket.send_multipart([frames[0], frames[1], code, text, user, b""])
            await asyncio.sleep(0)  # a flood of handshakes must not starve the other tasks

    def close(self) -> None:
        self.socket.close(linger=0)
