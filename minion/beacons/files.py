"""``file``: files created, changed or deleted, found by scanning (no inotify needed)."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import stat
from typing import Any, ClassVar

from minion.beacons.base import Report
from minion.options import Options

Snapshot = dict[str, tuple[float, int, int, int, str | None]]


class FileBeacon:
    """Files or folders that changed, appeared or disappeared.

    Options: ``paths`` (globs; a folder means its files), ``recursive`` (descend into
    folders; default false), ``hash`` (compare content by SHA-256 too; default true),
    ``max_hash_size`` (bytes; larger files are compared by metadata only; default 16 MiB),
    ``max_files`` (a bound on files tracked; default 10000).
    Data: ``path change`` (``created``, ``modified``, ``deleted``) ``size mtime mode uid user
    sha256``. The first scan records what is there and reports nothing.
    """

    default_interval: ClassVar[float] = 5.0

    def __init__(self, options: Options) -> None:
        self.patterns = options.text_list("paths", required=True)
        self.recursive = options.boolean("recursive", False)
        self.hash = options.boolean("hash", True)
        self.max_hash_size = options.integer("max_hash_size", 16 << 20, 0, 2**40)
        self.max_files = options.integer("max_files", 10_000, 1, 10_000_000)
        self.known: Snapshot | None = None

    def poll(self) -> list[Report]:
        current = self._scan()
        previous, self.known = self.known, current
        if previous is None:
            return []
        reports = []
        for path in sorted(set(previous) | set(current)):
            before, now = previous.get(path), current.get(path)
            if before == now:
                continue
            change = "created" if before is None else "deleted" if now is None else "modified"
            reports.append(Report(None, self._data(path, change, now)))
        return reports

    def _files(self) -> list[str]:
        found: list[str] = []
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    for root, dirs, files in os.walk(path):
                        found.extend(os.path.join(root, f) for f in sorted(files))
                        if not self.recursive:
                            dirs.clear()
                else:
                    found.append(path)
                if len(found) >= self.max_files:
                    return found[: self.max_files]
        return found

    def _scan(self) -> Snapshot:
        snapshot: Snapshot = {}
        for path in self._files():
            try:
                info = os.lstat(path)
            except OSError:
                continue
            digest = None
            if self.hash and stat.S_ISREG(info.st_mode) and info.st_size <= self.max_hash_size:
                digest = _sha256(path)
            snapshot[path] = (info.st_mtime, info.st_size, info.st_mode, info.st_uid, digest)
        return snapshot

    @staticmethod
    def _data(
        path: str, change: str, entry: tuple[float, int, int, int, str | None] | None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"path": path, "change": change}
        if entry is not None:
            mtime, size, mode, uid, digest = entry
            data.update(
                size=size, mtime=mtime, mode=oct(stat.S_IMODE(mode)), uid=uid, user=_user(uid), sha256=digest
            )
        return data


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
