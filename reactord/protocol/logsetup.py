"""Logging for both daemons: human lines by default, one JSON object per line on request.

Two guards sit in the handler that ``setup_logging`` installs, so they hold for every log call
of both daemons, present and future:

- **Floods are summarized.** Records of one call site (logger, level, message template) pass
  ``BURST`` at a time per ``WINDOW`` seconds; the rest are counted, and one record at the same
  level and logger says how many when the window ends (``1,234 more like this in 10 s: ...``).
  A compromised minion or an unauthenticated client can make us log once per message they
  send; without this, they choose how fast the disk fills and how long the loop blocks on it.
- **Untrusted text is escaped.** Tags, paths and reasons from the network reach log lines; in
  the text format every control, line-separator and bidi character is written as an escape
  (``\\x1b``, ``\\n``, ``\\u2028``), so a record is one line that cannot forge another or drive
  a terminal. The JSON format escapes all non-ASCII text already.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "warning", "error")

#: ``extra=`` fields that are copied into JSON log lines (event ids, rule names, jids, ...).
CONTEXT_FIELDS = ("event_id", "tag", "source", "rule", "jid", "minion", "action", "reason")

#: Records of one call site let through per window; the rest are counted and summarized.
BURST = 10
#: The window of the rate limit, in seconds.
WINDOW = 10.0
#: Call sites counted at once; records of further ones share one count per level.
MAX_CALL_SITES = 1000
#: How often the flusher thread looks for windows that ended, in seconds.
FLUSH_INTERVAL = 1.0

_OVERFLOW_LOGGER = "reactord.logsetup"
_OVERFLOW_TEMPLATE = "(records of call sites beyond the first {:,} counted)"

#: (logger name, level, message template, rule); the template is None for the overflow count
_Key = tuple[str, int, str | None, str | None]


def _escapes(keep: str = "") -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    # line/paragraph separators, bidi embeddings and isolates, and lone surrogates (which a
    # strict UTF-8 log file cannot even encode: the whole record would be lost)
    for code in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xD800, 0xE000)):
        table[code] = f"\\u{code:04x}"
    for char in keep:
        del table[ord(char)]
    return table


_ESCAPES = _escapes()
_TRACEBACK_ESCAPES = _escapes(keep="\n")


def escape(text: str) -> str:
    """``text`` on one line with no character that moves the cursor or reorders the display."""
    return text.translate(_ESCAPES)


class Summary(logging.LogRecord):
    """The record that stands for those of one call site suppressed in one window."""

    suppressed: int
    rule: str | None


@dataclass(slots=True)
class _Site:
    start: float
    template: str
    pathname: str
    lineno: int
    passed: int = 0
    suppressed: int = 0


class RateLimit(logging.Filter):
    """Let at most ``burst`` records of one call site through per ``window`` seconds.

    A call site is (logger name, level, message template): ``log.warning("dropped %s", tag)``
    is one, whatever the tag, so distinct messages never crowd each other out. A record about
    a rule (``extra={"rule": ...}``) counts under that rule too: rule names come from the
    operator's files, and the ``log`` action of every rule shares one template. The records
    beyond the burst are dropped, tracebacks and all, and counted; when the window ends, one
    ``Summary`` at the same level and logger goes to ``sink`` (the handler): at the next record
    of that call site, or at the next ``flush()``, whichever comes first. ``start()`` runs a
    daemon thread that calls ``flush()`` every ``FLUSH_INTERVAL``, so a flood that stops is
    still summarized within about a window. Thread-safe: the table is behind one lock, and
    summaries are emitted outside it.

    The table is bounded: ``flush()`` forgets every call site whose window ended, and when
    ``max_sites`` are counted at once, records of any further call site share one count per
    level (a message template is code, but a caller that formats the message itself makes a
    new one each time).
    """

    def __init__(
        self,
        sink: Callable[[logging.LogRecord], object],
        *,
        burst: int = BURST,
        window: float = WINDOW,
        max_sites: int = MAX_CALL_SITES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.sink = sink
        self.burst = burst
        self.window = window
        self.max_sites = max_sites
        self.clock = clock
        self._sites: dict[_Key, _Site] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record, Summary):
            return True
        now = self.clock()
        msg = record.msg
        template = msg if isinstance(msg, str) else str(msg)
        rule = record.__dict__.get("rule")
        key: _Key = (record.name, record.levelno, template, None if rule is None else str(rule))
        summary = None
        with self._lock:
            site = self._sites.get(key)
            if site is None and len(self._sites) >= self.max_sites:
                key = (_OVERFLOW_LOGGER, record.levelno, None, None)
                template = _OVERFLOW_TEMPLATE.format(self.max_sites)
                site = self._sites.get(key)
            if site is not None and now - site.start >= self.window:
                del self._sites[key]
                summary = self._summary(key, site)
                site = None
            if site is None:
                site = self._sites[key] = _Site(now, template, record.pathname, record.lineno)
            passed = site.passed < self.burst
            if passed:
                site.passed += 1
            else:
                site.suppressed += 1
        if summary is not None:
            self.sink(summary)  # before this record, which opens the next window
        return passed

    def flush(self, *, final: bool = False) -> None:
        """Summarize and forget the call sites whose window ended (all of them when ``final``)."""
        now = self.clock()
        summaries = []
        with self._lock:
            for key, site in list(self._sites.items()):
                if final or now - site.start >= self.window:
                    del self._sites[key]
                    summary = self._summary(key, site)
                    if summary is not None:
                        summaries.append(summary)
        for summary in summaries:
            self.sink(summary)

    def start(self, interval: float = FLUSH_INTERVAL) -> None:
        """Flush every ``interval`` seconds on a daemon thread, until ``close()``."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="reactord-log-flusher", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher and summarize what is still counted (at exit, or a new setup)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush(final=True)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def _summary(self, key: _Key, site: _Site) -> Summary | None:
        if not site.suppressed:
            return None
        name, level, _, rule = key
        text = f"{site.suppressed:,} more like this in {self.window:g} s: {site.template}"
        if rule is not None:
            text += f" (rule {rule})"
        summary = Summary(name, level, site.pathname, site.lineno, text, None, None)
        summary.suppressed = site.suppressed
        summary.rule = rule
        return summary


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
        if isinstance(record, Summary):
            out["suppressed"] = record.suppressed
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # ensure_ascii (the default) escapes every control and non-ASCII character, U+2028
        # and U+2029 included: one line, valid JSON, and nothing a terminal acts on
        return json.dumps(out, default=str, ensure_ascii=True)


class HumanFormatter(logging.Formatter):
    """One line per record, escaped; our own tracebacks follow it, with their newlines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        lines = [escape(self.formatMessage(record))]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # may carry an exception's message: escaped all but the newlines
            lines.append(record.exc_text.translate(_TRACEBACK_ESCAPES))
        if record.stack_info:
            lines.append(self.formatStack(record.stack_info).translate(_TRACEBACK_ESCAPES))
        return "\n".join(lines)


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
    level: str,
    *,
    fmt: str = "text",
    log_file: Path | None = None,
    name: str = "reactord",
    burst: int = BURST,
    window: float = WINDOW,
) -> logging.Handler:
    """Configure the root logger once for a daemon and return its handler.

    The handler carries a ``RateLimit`` (``burst`` records per call site per ``window``
    seconds) whose flusher thread runs until exit, when what it still counts is summarized.
    """
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = ReopenableFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    limit = RateLimit(handler.handle, burst=burst, window=window)
    handler.addFilter(limit)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        for old_limit in rate_limits(old):
            atexit.unregister(old_limit.close)
            old_limit.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    limit.start()
    atexit.register(limit.close)  # runs before logging's own shutdown, registered earlier
    return handler


def rate_limits(handler: logging.Handler) -> list[RateLimit]:
    """The rate limits ``setup_logging`` put on ``handler``."""
    return [f for f in handler.filters if isinstance(f, RateLimit)]


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
