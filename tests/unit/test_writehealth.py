"""A full-disk episode: one error line, a backoff, and an end only after quiet success."""

from __future__ import annotations

import logging

import pytest

from reactord.base.stats import Stats
from reactord.protocol.errors import StorageFull
from reactord.writehealth import RECOVERY_QUIET, RETRY_MAX, WriteHealth


def test_an_episode_is_one_error_line_backs_off_and_ends_after_quiet_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    health = WriteHealth(Stats(), clock=lambda: now[0], monotonic=lambda: now[0])
    full = StorageFull("/x/master.db", "disk full")
    with caplog.at_level(logging.INFO, logger="reactord.events"):
        waits = []
        for _ in range(8):
            health.failed(full)
            waits.append(health.wait())
        assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]
        assert health.error == "/x/master.db: disk full" and health.backing_off()
        now[0] += 1.0
        health.succeeded()  # a small write fits: the backoff ends, the episode does not
        assert not health.backing_off() and health.error is not None
        health.failed(full)  # a large one does not
        now[0] += RECOVERY_QUIET - 0.1
        assert health.quiet_without_success() is None
        now[0] += 0.2
        assert health.quiet_without_success() is True  # nothing wrote since: probe
        health.succeeded()
        assert health.error is None and health.quiet_without_success() is None
    lines = [r.getMessage() for r in caplog.records]
    assert sum("not acknowledged until it can be written" in line for line in lines) == 1
    assert sum("written again after" in line for line in lines) == 1
