"""``file.*``: read, write and inspect files inside ``functions.file_roots`` only."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
from typing import Any

from minion.errors import FunctionError
from minion.functions.confine import confined
from minion.functions.context import JobContext

MAX_READ = 256 * 1024  # a return must fit one message (max_message_size / 2 by default)


def stat_(path: str, *, ctx: JobContext) -> dict[str, Any]:
    """Size, mode, owner and times of a file or folder."""
    real = confined(path, ctx.settings.file_roots)
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise FunctionError(f"{path}: no such file") from None
    return {
        "path": str(real),
        "type": "dir" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else "other",
        "size": info.st_size,
        "mode": oct(stat.S_IMODE(info.st_mode)),
        "uid": info.st_uid,
        "user": _name(pwd.getpwuid, info.st_uid),
        "gid": info.st_gid,
        "group": _name(grp.getgrgid, info.st_gid),
        "mtime": info.st_mtime,
        "ctime": info.st_ctime,
    }


def exists(path: str, *, ctx: JobContext) -> bool:
    """Whether the path exists (inside the roots)."""
    return confined(path, ctx.settings.file_roots).exists()


def read(path: str, max_bytes: int = MAX_READ, *, ctx: JobContext) -> str:
    """The text of a file (UTF-8, undecodable bytes replaced), up to ``max_bytes``."""
    real = confined(path, ctx.settings.file_roots)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise FunctionError(f"{path}: no such file") from None
    except OSError as exc:
        raise FunctionError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(max(0, min(int(max_bytes), MAX_READ))).decode(errors="replace")


def write(
    path: str, content: str, mode: str | int = "0644", append: bool = False, *, ctx: JobContext
) -> dict[str, Any]:
    """Write (or append) text to a file inside the roots; never through a symlink.

    ``mode`` is octal text (``"0600"``) or a number (``0o600``; YAML reads ``0600`` as one).
    """
    if not isinstance(content, str):
        raise FunctionError("content must be text")
    try:
        bits = mode if isinstance(mode, int) and not isinstance(mode, bool) else int(str(mode), 8)
    except ValueError:
        raise FunctionError(f"mode {mode!r} is not an octal mode like 0644") from None
    real = confined(path, ctx.settings.file_roots, parent_only=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(real, flags, bits & 0o7777)
    except OSError as exc:
        raise FunctionError(f"{path}: {exc.strerror}") from None
    data = content.encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return {"path": str(real), "bytes": len(data)}


def hash_(path: str, algorithm: str = "sha256", *, ctx: JobContext) -> str:
    """The hex digest of a file (sha256, sha1, md5, sha512)."""
    if algorithm not in ("sha256", "sha1", "md5", "sha512"):
        raise FunctionError(f"unknown algorithm {algorithm!r}")
    real = confined(path, ctx.settings.file_roots)
    digest = hashlib.new(algorithm)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise FunctionError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _name(lookup: Any, number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)
