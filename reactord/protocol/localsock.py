"""Request/reply over a local unix socket: the master's control socket and the minion's local socket.

The socket file is created owner-only (0600, in a 0700 folder) and a peer of another user
is refused (SO_PEERCRED). Frames are those of ``reactord.protocol.framing``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from reactord.protocol.errors import DecodeError, ReactordError, RequestError, Unreachable
from reactord.protocol.framing import encode, read_frame, recv_frame

log = logging.getLogger("reactord.localsock")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Stream:
    """A handler result that is sent as a sequence of items (``event watch``, ``replay``)."""

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self.items = items


class LocalServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.is_symlink() or (self.path.exists() and not stat.S_ISSOCK(self.path.stat().st_mode)):
            raise RequestError(f"{self.path} exists and is not a socket; refusing to replace it")
        self.path.unlink(missing_ok=True)  # a socket left by a daemon that did not stop cleanly
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def serve(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer):
                log.warning("refused a control connection from another user")
                return
            while True:
                try:
                    request = await read_frame(reader)
                except DecodeError as exc:
                    writer.write(encode({"ok": False, "error": str(exc), "code": "bad_request"}))
                    break
                if request is None:
                    break
                await self._answer(request, writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: Any, writer: asyncio.StreamWriter) -> None:
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            writer.write(encode({"ok": False, "error": "bad request", "code": "bad_request"}))
            return
        args = request.get("args") or {}
        handler = self.handlers.get(request["op"])
        if handler is None or not isinstance(args, dict):
            writer.write(
                encode({"ok": False, "error": f"unknown operation {request['op']!r}", "code": "bad_request"})
            )
            return
        try:
            result = await handler(args)
        except RequestError as exc:
            writer.write(encode({"ok": False, "error": str(exc), "code": exc.code}))
            return
        except ReactordError as exc:
            writer.write(encode({"ok": False, "error": str(exc), "code": "failed"}))
            return
        except Exception:  # a bug in one handler must not take the master down; keep the trace
            log.exception("control operation %s failed", request["op"])
            writer.write(
                encode({"ok": False, "error": "internal error (see the master log)", "code": "internal"})
            )
            return
        if isinstance(result, Stream):
            async for item in result.items:
                writer.write(encode({"ok": True, "item": item}))
                await writer.drain()
            writer.write(encode({"ok": True, "end": True}))
        else:
            writer.write(encode({"ok": True, "result": result}))


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)


class LocalClient:
    def __init__(self, path: Path, timeout: float | None = 30.0, *, daemon: str = "daemon") -> None:
        self.path = path
        self.timeout = timeout
        self.daemon = daemon

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise Unreachable(
                f"no {self.daemon} is listening on {self.path} "
                f"(is `reactord {self.daemon}` running with this config?)"
            ) from exc
        except PermissionError as exc:
            sock.close()
            raise Unreachable(f"permission denied on {self.path}: run as the {self.daemon}'s user") from exc
        return sock

    def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result; raise ``RequestError`` when it failed."""
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
            raise Unreachable(f"lost the {self.daemon} on {self.path}: {exc}") from exc
        return self._read(sock)

    def _read(self, sock: socket.socket) -> dict[str, Any]:
        try:
            reply = recv_frame(sock)
        except TimeoutError as exc:
            message = f"the {self.daemon} did not answer within {self.timeout:g}s"
            raise RequestError(message, "timeout") from exc
        except (ConnectionError, OSError) as exc:
            raise Unreachable(f"lost the {self.daemon} on {self.path}: {exc}") from exc
        except DecodeError as exc:
            raise RequestError(f"bad reply from the {self.daemon}: {exc}", "bad_reply") from exc
        if not isinstance(reply, dict):
            raise RequestError(f"bad reply from the {self.daemon}", "bad_reply")
        return reply


def _result(reply: dict[str, Any]) -> Any:
    if not reply.get("ok"):
        raise RequestError(str(reply.get("error", "failed")), str(reply.get("code", "failed")))
    return reply.get("result")
