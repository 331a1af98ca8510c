"""Raw protocol peers for tests that speak the wire directly (attackers, tampered clients)."""

from __future__ import annotations

import os
from pathlib import Path

import zmq

from reactord.protocol import messages as m
from reactord.protocol.keys import CurveKeys, load_public_pem


class RawPeer:
    """A CURVE DEALER on the command port, with any key, sending whatever a test wants."""

    def __init__(self, port: int, master_key: bytes, keys: CurveKeys | None = None) -> None:
        self.keys = keys or CurveKeys.generate()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_serverkey = master_key
        self.sock.curve_publickey = self.keys.public_z85
        self.sock.curve_secretkey = self.keys.secret_z85
        self.sock.setsockopt(zmq.ROUTING_ID, os.urandom(16))
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, message: m.Message | bytes) -> bool:
        """Queue a message; False when it cannot even be queued (no connection ever completed)."""
        try:
            self.sock.send(message if isinstance(message, bytes) else message.to_wire(), flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def recv(self, timeout: float = 5.0) -> m.Message | None:
        if not self.sock.poll(timeout * 1000):
            return None
        return m.decode(self.sock.recv())

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def master_key(setup_root: Path) -> bytes:
    return load_public_pem(setup_root / "pki" / "master" / "master.pub")
