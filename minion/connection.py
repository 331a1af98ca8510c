"""The minion's side of the command channel: a CURVE DEALER connected to the master's ROUTER."""

from __future__ import annotations

import os

import zmq
import zmq.asyncio

from minion.config import MinionConfig
from reactord.protocol.keys import CurveKeys
from reactord.protocol.messages import Message


def curve_client_socket(
    ctx: zmq.asyncio.Context, kind: int, keys: CurveKeys, master_key: bytes, max_message_size: int
) -> zmq.asyncio.Socket:
    """A socket that authenticates the master by its pinned key, and itself by its own."""
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.curve_serverkey = master_key  # raw 32 bytes; libzmq takes raw or Z85
    sock.curve_publickey = keys.public_z85
    sock.curve_secretkey = keys.secret_z85
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    # ZMTP heartbeats: a connection that went silent (a half-open TCP link) is dropped and
    # re-made within seconds instead of waiting for TCP to notice.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
    return sock


class MasterConnection:
    def __init__(
        self, ctx: zmq.asyncio.Context, config: MinionConfig, keys: CurveKeys, master_key: bytes
    ) -> None:
        self.socket = curve_client_socket(ctx, zmq.DEALER, keys, master_key, config.max_message_size)
        # A per-connection secret: the master routes by our authenticated key, and nobody
        # else can take over a routing id they cannot know.
        self.socket.setsockopt(zmq.ROUTING_ID, os.urandom(16))
        self.socket.setsockopt(zmq.SNDHWM, 10000)
        self.socket.connect(config.command_endpoint)

    async def send(self, message: Message) -> bool:
        return await self.send_raw(message.to_wire())

    async def send_raw(self, data: bytes) -> bool:
        try:
            await self.socket.send(data, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    async def recv(self) -> bytes:
        data: bytes = await self.socket.recv()
        return data

    def close(self) -> None:
        self.socket.close(linger=0)
