"""Log files: reopened after rotation, and kept when the new file cannot be opened."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reactord.protocol.logsetup import HumanFormatter, ReopenableFileHandler, reopen_log


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
