"""Logging: files reopened after rotation, floods summarized, untrusted text escaped."""

from __future__ import annotations

import atexit
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactord.protocol.logsetup import (
    BURST,
    WINDOW,
    HumanFormatter,
    JsonFormatter,
    RateLimit,
    ReopenableFileHandler,
    rate_limits,
    reopen_log,
    setup_logging,
)
from tests.support import wait_until


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.logsetup.{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def test_reopen_after_rotation_writes_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "master.log"
    handler = ReopenableFileHandler(path, encoding="utf-8")
    handler.setFormatter(HumanFormatter())
    logger = _logger(handler)
    logger.info("before")
    path.rename(tmp_path / "master.log.1")
    handler.reopen()
    logger.info("after")
    handler.close()
    assert "before" in (tmp_path / "master.log.1").read_text()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_a_reopen_that_fails_keeps_logging_to_the_old_file(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "master.log"
    handler = ReopenableFileHandler(path, encoding="utf-8")
    handler.setFormatter(HumanFormatter())
    logger = _logger(handler)
    logger.info("before")
    moved = tmp_path / "moved"
    logs.rename(moved)  # the directory is gone: the reopen cannot create the file
    with pytest.raises(OSError):
        handler.reopen()
    logger.error("could not reopen")
    handler.close()
    assert not logs.exists()
    text = (moved / "master.log").read_text()
    assert "before" in text and "could not reopen" in text


def test_reopen_log_reports_a_failure_in_the_old_file_instead_of_raising(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    handler = ReopenableFileHandler(logs / "minion.log", encoding="utf-8")
    handler.setFormatter(HumanFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logs.rename(tmp_path / "moved")
        reopen_log(handler)  # SIGHUP: no exception escapes into the event loop
    finally:
        root.removeHandler(handler)
        handler.close()
    text = (tmp_path / "moved" / "minion.log").read_text()
    assert "could not reopen the log file" in text and "logging goes on to the old file" in text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Limited:
    """A private logger whose handler writes to a string through a rate limit on a fake clock."""

    def __init__(self, formatter: logging.Formatter | None = None, **limits: int) -> None:
        self.clock = Clock()
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter or HumanFormatter())
        self.limit = RateLimit(self.handler.handle, clock=self.clock, **limits)
        self.handler.addFilter(self.limit)
        self.log = self.logger("test.logsetup.flood")

    def logger(self, name: str) -> logging.Logger:
        logger = logging.getLogger(name)
        logger.handlers = [self.handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        return logger

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


TEMPLATE = "dropped %s from %s: outside minion/%s/"


def test_a_flood_of_identical_warnings_passes_the_burst_then_one_summary_with_the_exact_count() -> None:
    out = Limited()
    for n in range(10_000):
        out.log.warning(TEMPLATE, f"minion/web02/x{n}", "web01", "web01")
    assert len(out.lines()) == BURST == 10
    assert "minion/web02/x9 " in out.lines()[-1]
    out.clock.now += WINDOW
    out.limit.flush()
    assert len(out.lines()) == BURST + 1
    assert out.lines()[-1].endswith(
        " WARNING test.logsetup.flood: 9,990 more like this in 10 s: dropped %s from %s: outside minion/%s/"
    )


def test_threads_flooding_one_call_site_are_counted_exactly() -> None:
    out = Limited()

    def flood() -> None:
        for _ in range(2_500):
            out.log.warning("webhook %s refused (%d): %s", "/hooks/x", 401, "no token")

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.clock.now += WINDOW
    out.limit.flush()
    assert len(out.lines()) == BURST + 1
    assert "9,990 more like this in 10 s: webhook %s refused (%d): %s" in out.lines()[-1]


def test_distinct_call_sites_are_limited_apart() -> None:
    out = Limited()
    other = out.logger("test.logsetup.other")
    for n in range(100):
        out.log.warning("flood %d", n)
    out.log.warning("master up")  # another template
    out.log.info("flood %d", 1)  # another level
    other.warning("flood %d", 2)  # another logger
    lines = out.lines()
    assert len(lines) == BURST + 3
    assert lines[-3].endswith("WARNING test.logsetup.flood: master up")
    assert lines[-2].endswith("INFO    test.logsetup.flood: flood 1")
    assert lines[-1].endswith("WARNING test.logsetup.other: flood 2")


def test_the_log_actions_of_different_rules_are_limited_apart() -> None:
    out = Limited(JsonFormatter(), burst=1)
    rules = out.logger("reactord.rules")
    for rule in ("noisy", "quiet"):
        for n in range(3):
            rules.info("%s", f"{rule} {n}", extra={"rule": rule, "event_id": f"E{n}"})
    out.clock.now += WINDOW
    out.limit.flush()
    records = [json.loads(line) for line in out.lines()]
    assert [r["message"] for r in records] == [
        "noisy 0",
        "quiet 0",
        "2 more like this in 10 s: %s (rule noisy)",
        "2 more like this in 10 s: %s (rule quiet)",
    ]
    assert [r.get("rule") for r in records] == ["noisy", "quiet", "noisy", "quiet"]
    assert "event_id" not in records[2]


def test_the_summary_comes_when_the_window_ends_with_no_further_record() -> None:
    out = Limited(burst=2, window=5)
    for _ in range(7):
        out.log.info("new outbox %s", "e1")
    out.clock.now += 4.9
    out.limit.flush()
    assert len(out.lines()) == 2  # the window is still open
    out.clock.now += 0.1
    out.limit.flush()
    assert out.lines()[-1].endswith("INFO    test.logsetup.flood: 5 more like this in 5 s: new outbox %s")
    out.limit.flush()
    assert len(out.lines()) == 3  # said once


def test_a_record_after_the_window_comes_after_the_summary_and_opens_a_new_window() -> None:
    out = Limited(burst=2, window=5)
    for n in range(4):
        out.log.warning("refused %d", n)
    out.clock.now += 5
    for n in range(4, 8):
        out.log.warning("refused %d", n)
    tails = [line.split(": ", 1)[1] for line in out.lines()]
    assert tails == [
        "refused 0",
        "refused 1",
        "2 more like this in 5 s: refused %d",
        "refused 4",
        "refused 5",
    ]


def test_the_flusher_thread_summarizes_a_flood_that_stopped() -> None:
    out = Limited(burst=1, window=5)
    out.limit.start(interval=0.01)
    try:
        for _ in range(3):
            out.log.warning("no answer from the master")
        out.clock.now += 5
        wait_until(lambda: len(out.lines()) == 2, 10, "the flusher's summary")
        assert out.lines()[-1].endswith(": 2 more like this in 5 s: no answer from the master")
    finally:
        out.limit.close()


def test_close_summarizes_what_is_still_counted() -> None:
    out = Limited(burst=1)
    for _ in range(4):
        out.log.error("beacon %s failed", "disk")
    out.limit.close()  # at exit: the window has not ended, the count is said anyway
    assert out.lines()[-1].endswith("ERROR   test.logsetup.flood: 3 more like this in 10 s: beacon %s failed")


def test_suppressed_records_lose_their_tracebacks_with_them() -> None:
    out = Limited(burst=2)
    for _ in range(5):
        try:
            raise ValueError("boom")
        except ValueError:
            out.log.exception("webhook %s failed", "/hooks/x")
    out.limit.flush()
    text = out.stream.getvalue()
    assert text.count("Traceback (most recent call last):") == 2
    out.clock.now += WINDOW
    out.limit.flush()
    assert out.lines()[-1].endswith(": 3 more like this in 10 s: webhook %s failed")


def test_the_table_of_call_sites_is_bounded() -> None:
    out = Limited(burst=2, max_sites=3)
    for n in range(50):
        out.log.warning(f"made by the caller {n}")  # a new template each time
    lines = out.lines()
    assert len(lines) == 3 + 2  # three counted call sites, then two of the shared count
    out.clock.now += WINDOW
    out.limit.flush()
    assert out.lines()[-1].endswith(
        "WARNING reactord.logsetup: 45 more like this in 10 s: "
        "(records of call sites beyond the first 3 counted)"
    )
    out.log.warning("a new call site once the windows ended")
    assert out.lines()[-1].endswith(": a new call site once the windows ended")


def test_a_json_summary_carries_the_count() -> None:
    out = Limited(JsonFormatter(), burst=1)
    for n in range(1_235):
        out.log.warning(TEMPLATE, n, "web01", "web01", extra={"source": "web01"})
    out.clock.now += WINDOW
    out.limit.flush()
    records = [json.loads(line) for line in out.lines()]
    assert records[0]["source"] == "web01" and "suppressed" not in records[0]
    assert records[1]["suppressed"] == 1_234
    assert records[1]["message"] == "1,234 more like this in 10 s: " + TEMPLATE
    assert records[1]["level"] == "warning" and records[1]["logger"] == "test.logsetup.flood"


HOSTILE = "/hooks/\x1b]0;pwned\x07\x1b[2J\r\nINFO forged line\u2028\u2029\u202e\u2066\x85\x7f\tend"


def test_untrusted_text_in_a_text_line_is_escaped_onto_one_line() -> None:
    out = Limited()
    out.log.warning("webhook %s refused (%d): %s", HOSTILE, 401, "bad \udcff token")
    text = out.stream.getvalue()
    assert text.endswith("\n") and len(text.splitlines()) == 1
    assert all(char.isprintable() for char in text[:-1])
    assert (
        "webhook /hooks/\\x1b]0;pwned\\x07\\x1b[2J\\r\\nINFO forged line"
        "\\u2028\\u2029\\u202e\\u2066\\x85\\x7f\\tend refused (401): bad \\udcff token"
    ) in text


def test_untrusted_text_in_a_json_line_stays_one_valid_object() -> None:
    out = Limited(JsonFormatter())
    out.log.warning("dropped %s", HOSTILE, extra={"tag": HOSTILE, "reason": "\udcff"})
    text = out.stream.getvalue()
    assert text.isascii() and len(text.splitlines()) == 1
    record = json.loads(text)
    assert record["message"] == "dropped " + HOSTILE and record["tag"] == HOSTILE
    assert record["reason"] == "\udcff"


def test_a_traceback_still_spans_lines_with_its_controls_escaped() -> None:
    out = Limited()
    try:
        raise ValueError("bad tag \x1b[31mred")
    except ValueError:
        out.log.exception("control operation %s failed", "fire\n")
    lines = out.lines()
    assert lines[0].endswith("ERROR   test.logsetup.flood: control operation fire\\n failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad tag \\x1b[31mred"
    assert len(lines) >= 4


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        for limit in rate_limits(handler):
            atexit.unregister(limit.close)
            limit.close()
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_setup_logging_limits_every_logger_of_the_daemon(root_logger: logging.Logger, tmp_path: Path) -> None:
    path = tmp_path / "master.log"
    first = setup_logging("debug", log_file=path, burst=3, window=5)
    handler = setup_logging("debug", log_file=path, burst=3, window=5)  # replaces the first
    assert root_logger.handlers == [handler] and first not in root_logger.handlers
    first.close()
    for name in ("reactord.pipeline", "minion"):
        for _ in range(20):
            logging.getLogger(name).debug("first events from %s", "web01\x1b")
    (limit,) = rate_limits(handler)
    limit.close()  # what the exit does
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * (3 + 1)
    assert lines[0].endswith("DEBUG   reactord.pipeline: first events from web01\\x1b")
    assert lines[3].endswith("DEBUG   minion: first events from web01\\x1b")
    assert lines[6].endswith("DEBUG   reactord.pipeline: 17 more like this in 5 s: first events from %s")
    assert lines[7].endswith("DEBUG   minion: 17 more like this in 5 s: first events from %s")
