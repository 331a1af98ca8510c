"""What the attack tests share: a running setup with accepted minions, and raw hostile peers."""

from __future__ import annotations

import json
import socket
from typing import Any

import zmq

from reactord.protocol.keys import CurveKeys
from tests.peers import master_key
from tests.support import Setup, wait_until


def running(setup: Setup, *ids: str, **minion_changes: Any) -> None:
    """Master up, these minions up and accepted."""
    setup.start_master()
    for minion_id in ids:
        setup.start_minion(minion_id, **minion_changes)
    if ids:
        setup.accept_all(*ids)


def ping(setup: Setup, minion_id: str) -> bool:
    result = setup.cli("run", "-L", minion_id, "test.ping", "--json", "--timeout", "5")
    return result.returncode == 0 and json.loads(result.stdout)["returns"][minion_id]["success"] is True


def assert_master_serves(setup: Setup, *ids: str) -> None:
    """The master still answers the CLI and still runs jobs on its minions."""
    assert setup.daemons[0].alive(), setup.daemons[0].output()[-2000:]
    assert setup.cli("key", "list").returncode == 0
    for minion_id in ids:
        wait_until(lambda m=minion_id: ping(setup, m), 20, f"{minion_id} to answer")


def minion_keys(setup: Setup, minion_id: str) -> CurveKeys:
    return CurveKeys.load_or_create(setup.root / "pki" / minion_id, "minion")


def curve_socket(ctx: zmq.Context[Any], kind: int, setup: Setup, keys: CurveKeys | None, port: int) -> Any:
    sock = ctx.socket(kind)
    sock.linger = 0
    if keys is not None:
        sock.curve_serverkey = master_key(setup.root)
        sock.curve_publickey, sock.curve_secretkey = keys.public_z85, keys.secret_z85
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def raw_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(payload)
            sock.settimeout(0.5)
            sock.recv(1024)
        except OSError:
            pass  # the daemon may drop us at any point: that is the expected outcome
