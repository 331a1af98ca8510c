"""``command``, ``journal`` and ``heartbeat``: a program's verdict, new log lines, and a pulse."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from minion.beacons.base import Report, subject
from minion.options import Options
from reactord.protocol.patterns import compile_regex

#: A log line is matched on its first this many characters.
MAX_LINE = 64 * 1024


class CommandBeacon:
    """A program's exit code and trimmed output (argv only, never a shell).

    Options: ``argv`` (the program and its arguments), ``timeout`` (default 10s; the whole
    process group is killed after it), ``max_output`` (characters kept; default 4096).
    Data: ``argv retcode ok output timed_out``. Onchange reports when the exit code or the
    output changes.
    """

    default_interval: ClassVar[float] = 60.0

    def __init__(self, options: Options) -> None:
        self.argv = options.text_list("argv", required=True)
        self.timeout = options.duration("timeout", 10.0, 0.01)
        self.max_output = options.integer("max_output", 4096, 0, 1 << 20)

    def poll(self) -> list[Report]:
        output, code, timed_out = run_bounded(self.argv, self.timeout, self.max_output)
        data = {"argv": self.argv, "retcode": code, "ok": code == 0, "output": output, "timed_out": timed_out}
        return [Report(None, data, state=(code, output))]


def run_bounded(argv: list[str], timeout: float, max_output: int) -> tuple[str, int, bool]:
    """Run ``argv`` in its own process group; kill the group at ``timeout``."""
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}", 127, False
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    text = out.decode(errors="replace").strip()
    if len(text) > max_output:
        text = text[-max_output:]
    return text, (124 if timed_out else proc.returncode), timed_out


class JournalBeacon:
    """New lines matching a pattern, from log files or from journald.

    Options: ``files`` (log files; rotation is followed), ``units`` (systemd units read with
    journalctl), ``pattern`` (a regular expression; default: every line), ``max_lines``
    (lines reported per interval at most; the rest are counted as ``skipped``; default 100).
    Data: ``source line`` and, when lines were skipped, ``skipped``; subject: the file or unit.
    Lines already there when the minion starts are not reported.
    """

    default_interval: ClassVar[float] = 5.0

    def __init__(self, options: Options) -> None:
        self.files = options.text_list("files")
        self.units = options.text_list("units")
        if not self.files and not self.units:
            raise options.fail("files", "give files or units to read")
        try:  # RE2: log lines carry outside text (user names, paths); matching stays linear
            self.pattern = compile_regex(options.text("pattern", "") or "", max_text=MAX_LINE)
        except ValueError as exc:
            raise options.fail("pattern", str(exc)) from None
        self.max_lines = options.integer("max_lines", 100, 1, 100_000)
        self.offsets: dict[str, tuple[int, int]] = {}  # file -> (inode, offset)
        self.cursors: dict[str, str | None] = {}
        self.started = time.time()

    def poll(self) -> list[Report]:
        reports: list[Report] = []
        for path in self.files:
            reports += self._lines(path, self._read_file(path))
        for unit in self.units:
            reports += self._lines(unit, self._read_unit(unit))
        return reports

    def _lines(self, source: str, lines: list[str]) -> list[Report]:
        matched = [line for line in lines if self.pattern.search(line[:MAX_LINE])]
        kept, skipped = matched[: self.max_lines], len(matched) - self.max_lines
        reports = [
            Report(subject(os.path.basename(source)), {"source": source, "line": line[:2000]})
            for line in kept
        ]
        if skipped > 0 and reports:
            reports[-1].data["skipped"] = skipped
        return reports

    def _read_file(self, path: str) -> list[str]:
        try:
            info = os.stat(path)
        except OSError:
            return []
        inode, offset = self.offsets.get(path, (info.st_ino, -1))
        if offset < 0:  # first look: start at the end
            self.offsets[path] = (info.st_ino, info.st_size)
            return []
        if inode != info.st_ino or info.st_size < offset:  # rotated or truncated
            offset = 0
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read(4 << 20)
        last_newline = chunk.rfind(b"\n")
        if last_newline < 0:
            self.offsets[path] = (info.st_ino, offset)
            return []
        self.offsets[path] = (info.st_ino, offset + last_newline + 1)
        return chunk[:last_newline].decode(errors="replace").splitlines()

    def _read_unit(self, unit: str) -> list[str]:
        if shutil.which("journalctl") is None:
            return []
        argv = [
            "journalctl",
            "--unit",
            unit,
            "--output",
            "json",
            "--no-pager",
            "--lines",
            str(self.max_lines * 10),
        ]
        cursor = self.cursors.get(unit)
        argv += ["--after-cursor", cursor] if cursor else ["--since", f"@{int(self.started)}"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        lines = []
        for raw in result.stdout.splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue
            self.cursors[unit] = entry.get("__CURSOR", cursor)
            message = entry.get("MESSAGE")
            if isinstance(message, str):
                lines.append(message)
        return lines


class HeartbeatBeacon:
    """A plain periodic event, for dead-man rules (``for`` a missing heartbeat).

    Options: none. Data: ``uptime`` (the minion's, seconds), ``host_uptime``, ``time``.
    """

    default_interval: ClassVar[float] = 60.0

    def __init__(self, options: Options) -> None:
        self.started = time.monotonic()

    def poll(self) -> list[Report]:
        try:
            host_uptime = float(Path("/proc/uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            host_uptime = None
        data: dict[str, Any] = {
            "uptime": round(time.monotonic() - self.started, 1),
            "host_uptime": host_uptime,
            "time": time.time(),
        }
        return [Report(None, data)]
