"""Request/reply over a local unix socket: the master's control socket and the minion's local socket.

The socket file is created owner-only (0600, in a 0700 folder) and a peer of another user
is refused (SO_PEERCRED). Frames are those of ``reactord.protocol.framing``.

An answer of any size goes out: a value over one frame is split into continuation frames,
which the client reassembles up to ``MAX_CONTROL_REPLY``. That covers every operation, tree
shaped answers included (``event.show``), without a paging scheme per operation. An answer
with no natural bound (``event.list`` over the whole log) is a ``Stream`` instead, so that
neither side ever holds it whole. Writes drain as they go: a slow reader slows the handler.
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
from reactord.protocol.framing import MAX_CONTROL_REPLY, encode, frames, read_frame, recv_frame

log = logging.getLogger("reactord.localsock")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Stream:
    """A handler result that is sent as a sequence of items (``event.list``, ``event.replay``).

    Each item is written (and drained) before the next is asked for; an error raised by the
    items ends the stream with an error reply. An async generator is closed when the stream
    ends early (the client went away).
    """

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self.items = items


class LocalServer:
    def __init__(self, path: Path, handlers: dict[str, Handler], *, daemon: str = "daemon") -> None:
        self.path = path
        self.handlers = handlers
        self.daemon = daemon
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
        what = "control socket" if self.daemon == "master" else "local socket"
        log.info("%s on %s (owner only)", what, self.path)

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
                    await _send(writer, _refusal(str(exc)))
                    break
                if request is None:
                    break
                await self._answer(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: Any, writer: asyncio.StreamWriter) -> None:
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            await _send(writer, _refusal("bad request"))
            return
        args = request.get("args") or {}
        handler = self.handlers.get(request["op"])
        if handler is None or not isinstance(args, dict):
            await _send(writer, _refusal(f"unknown operation {request['op']!r}"))
            return
        try:
            result = await handler(args)
            if isinstance(result, Stream):
                await _stream(result, writer)
                await _send(writer, {"ok": True, "end": True})
            else:
                await _send(writer, {"ok": True, "result": result})
        except ConnectionError:
            raise  # the client went away: nobody to answer
        except RequestError as exc:
            await _send(writer, {"ok": False, "error": str(exc), "code": exc.code})
        except ReactordError as exc:  # EncodeError included: packing fails before a byte is written
            await _send(writer, {"ok": False, "error": str(exc), "code": "failed"})
        except Exception:  # a bug in one handler must not take the master down; keep the trace
            log.exception("control operation %s failed", request["op"])
            failure = {
                "ok": False,
                "error": f"internal error (see the {self.daemon}'s log)",
                "code": "internal",
            }
            await _send(writer, failure)


async def _stream(result: Stream, writer: asyncio.StreamWriter) -> None:
    try:
        async for item in result.items:
            await _send(writer, {"ok": True, "item": item})
    finally:
        close = getattr(result.items, "aclose", None)
        if close is not None:
            await close()


async def _send(writer: asyncio.StreamWriter, value: Any) -> None:
    for piece in frames(value):
        writer.write(piece)
        await writer.drain()


def _refusal(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "code": "bad_request"}


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
            reply = recv_frame(sock, MAX_CONTROL_REPLY)
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
