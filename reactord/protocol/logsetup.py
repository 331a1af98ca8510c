"""Logging for both daemons: human lines by default, one JSON object per line on request."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "warning", "error")

#: ``extra=`` fields that are copied into JSON log lines (event ids, rule names, jids, ...).
CONTEXT_FIELDS = ("event_id", "tag", "source", "rule", "jid", "minion", "action", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that reopens its file on request (after the OS rotated it).

    The new file is opened before the old stream is closed: when the open fails (a full
    disk, a directory gone), the error propagates and logging goes on to the old file.
    """

    def reopen(self) -> None:
        self.acquire()
        try:
            fresh = self._open()
            old, self.stream = self.stream, fresh
            if old:
                old.close()
        finally:
            self.release()


def setup_logging(
    level: str, *, fmt: str = "text", log_file: Path | None = None, name: str = "reactord"
) -> logging.Handler:
    """Configure the root logger once for a daemon and return its handler."""
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = ReopenableFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    return handler


def reopen_log(handler: logging.Handler) -> None:
    """Reopen the log file (SIGHUP, after rotation); when that fails, say so in the old one."""
    if isinstance(handler, ReopenableFileHandler):
        try:
            handler.reopen()
        except OSError as exc:
            logging.getLogger("reactord").error(
                "could not reopen the log file %s: %s; logging goes on to the old file",
                handler.baseFilename,
                exc.strerror or exc,
            )
