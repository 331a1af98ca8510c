"""The key service: hands out the master's public CURVE key so a minion can pin it.

A CURVE client must know the server's key before its first handshake, so this one socket
cannot be CURVE. It reads nothing from a request (any frame up to 64 bytes is answered the
same way) and answers with public information only: the key and its fingerprint. A minion
checks what it gets against ``master_finger`` (or trusts it on first use, with a warning)
and pins it; every later connection is CURVE-authenticated against the pinned key.

Example exchange: request ``b"key"``; reply ``["master_key", {"key": <32 bytes>,
"finger": "ab:cd:..."}]``.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from reactord.link import bound_endpoint
from reactord.protocol import codec
from reactord.protocol.keys import CurveKeys
from reactord.zap import KEY_DOMAIN

log = logging.getLogger("reactord.keyservice")


class KeyService:
    def __init__(self, ctx: zmq.asyncio.Context, keys: CurveKeys) -> None:
        self.reply = codec.pack(["master_key", {"key": keys.public, "finger": keys.finger}])
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.socket.zap_domain = KEY_DOMAIN
        self.socket.setsockopt(zmq.MAXMSGSIZE, 64)

    def bind(self, endpoint: str) -> None:
        self.socket.bind(endpoint)
        log.info("key service on %s (plain: the master's public key only)", bound_endpoint(self.socket))

    async def serve(self) -> None:
        while True:
            frames = await self.socket.recv_multipart()
            try:
                await self.socket.send_multipart([frames[0], self.reply], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the asker is gone or not reading; it will ask again
            await asyncio.sleep(0)  # a flood of askers must not starve the other tasks

    def close(self) -> None:
        self.socket.close(linger=0)
