"""The minion's side of the command channel: a CURVE DEALER connected to the master's ROUTER,
and the list of masters it may use, one at a time."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence

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


class MasterList:
    """The masters in the order the minion tries them, and the one it is on.

    The order is ``master:`` as written, or shuffled once here (``master_shuffle``; pass
    ``rng`` for a known order). ``advance`` moves to the next master, after the last the first
    again, and says when that completes a full round of masters tried without success (the
    caller then backs off); ``settled`` marks the current master as good, starting a new round.
    """

    def __init__(
        self, hosts: Sequence[str], *, shuffle: bool = False, rng: random.Random | None = None
    ) -> None:
        order = list(hosts)
        if not order:
            raise ValueError("no master to connect to")
        if shuffle:
            (rng or random.Random()).shuffle(order)
        self.hosts = tuple(order)
        self.index = 0
        self._tried = 1  # masters tried since the last good one, the current one included

    def __len__(self) -> int:
        return len(self.hosts)

    @property
    def current(self) -> str:
        return self.hosts[self.index]

    @property
    def several(self) -> bool:
        """More than one master: failover is on."""
        return len(self.hosts) > 1

    @property
    def position(self) -> str:
        """Where the current master is in the list, for logs: ``2 of 3``."""
        return f"{self.index + 1} of {len(self.hosts)}"

    def advance(self) -> bool:
        """Move to the next master; True when every master was tried since the last good one."""
        self.index = (self.index + 1) % len(self.hosts)
        self._tried += 1
        if self._tried > len(self.hosts):
            self._tried = 1
            return True
        return False

    def settled(self) -> None:
        """The current master answered as it should: a new round starts from it."""
        self._tried = 1


class MasterConnection:
    """The DEALER to the master the minion is on; ``move_to`` puts it on another master."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        config: MinionConfig,
        keys: CurveKeys,
        master_key: bytes,
        host: str | None = None,
    ) -> None:
        self._ctx = ctx
        self._config = config
        self._keys = keys
        self._master_key = master_key
        self.host = host if host is not None else config.master[0]
        self.socket = self._open(self.host)

    def _open(self, host: str) -> zmq.asyncio.Socket:
        sock = curve_client_socket(
            self._ctx, zmq.DEALER, self._keys, self._master_key, self._config.max_message_size
        )
        # A per-connection secret: the master routes by our authenticated key, and nobody
        # else can take over a routing id they cannot know.
        sock.setsockopt(zmq.ROUTING_ID, os.urandom(16))
        sock.setsockopt(zmq.SNDHWM, 10000)
        sock.connect(self._config.endpoint(host, self._config.command_port))
        return sock

    def move_to(self, host: str) -> None:
        """Leave the current master for ``host``: a new socket, with a new routing id.

        The old socket is closed, not reconnected: nothing queued for the old master goes to
        the new one, and nothing the old master still sends is read (a late welcome from it
        would say we are accepted where we are not).
        """
        old, self.socket, self.host = self.socket, self._open(host), host
        old.close(linger=0)  # cancels a pending recv on it; ``recv`` goes on with the new one

    async def send(self, message: Message) -> bool:
        return await self.send_raw(message.to_wire())

    async def send_raw(self, data: bytes) -> bool:
        try:
            await self.socket.send(data, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    async def recv(self) -> bytes:
        """The next message from the current master (waiting across a ``move_to``)."""
        while True:
            sock = self.socket
            try:
                data: bytes = await sock.recv()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if sock is self.socket or (task is not None and task.cancelling()):
                    raise  # the caller was cancelled, not the socket replaced
                continue
            if sock is self.socket:
                return data

    def close(self) -> None:
        self.socket.close(linger=0)
