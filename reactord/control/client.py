"""The CLI side of the control socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reactord.control.framing import encode, recv_frame
from reactord.errors import ControlError, MasterUnreachable
from reactord.protocol.errors import DecodeError


class ControlClient:
    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise MasterUnreachable(
                f"no master is listening on {self.path} (is `reactord master` running with this config?)"
            ) from exc
        except PermissionError as exc:
            sock.close()
            raise MasterUnreachable(f"permission denied on {self.path}: run as the master's user") from exc
        return sock

    def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result; raise ``ControlError`` when it failed."""
        with self._connect() as sock:
            reply = self._exchange(sock, op, args)
            return _result(reply)

    def stream(self, op: str, **args: Any) -> Iterator[Any]:
        """Send one request and yield each item of a streaming reply."""
        with self._connect() as sock:
            reply = self._exchange(sock, op, args)
            while True:
                if not reply.get("ok"):
                    _result(reply)
                if reply.get("end"):
                    return
                if "result" in reply:
                    yield reply["result"]
                    return
                yield reply.get("item")
                reply = self._read(sock)

    def _exchange(self, sock: socket.socket, op: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            sock.sendall(encode({"op": op, "args": args}))
        except OSError as exc:
            raise MasterUnreachable(f"lost the master on {self.path}: {exc}") from exc
        return self._read(sock)

    def _read(self, sock: socket.socket) -> dict[str, Any]:
        try:
            reply = recv_frame(sock)
        except TimeoutError as exc:
            raise ControlError(f"the master did not answer within {self.timeout:g}s", "timeout") from exc
        except (ConnectionError, OSError) as exc:
            raise MasterUnreachable(f"lost the master on {self.path}: {exc}") from exc
        except DecodeError as exc:
            raise ControlError(f"bad reply from the master: {exc}", "bad_reply") from exc
        if not isinstance(reply, dict):
            raise ControlError("bad reply from the master", "bad_reply")
        return reply


def _result(reply: dict[str, Any]) -> Any:
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "failed")), str(reply.get("code", "failed")))
    return reply.get("result")
