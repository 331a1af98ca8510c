"""Per-source budgets: token buckets for events and bytes, with a burst, refusals counted."""

from __future__ import annotations

from reactord.base.stats import Stats
from reactord.budget import Budgets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_source_waits_for_its_rate() -> None:
    clock, stats = Clock(), Stats()
    budgets = Budgets(100, 0, 2.0, stats, clock=clock)  # 100 events/s, a burst of 200, bytes free
    admitted = 0
    while budgets.admit("web01", 1000, events=10):
        admitted += 1
    assert admitted == 20  # 200 events of burst, 10 per frame
    assert budgets.refused == {"web01": 1}
    assert stats.labeled()["budget_refused"] == {(("source", "web01"),): 1}
    assert budgets.wait_for("web01") > 0
    clock.now += 0.05  # 5 events' worth: the bucket is positive again
    assert budgets.admit("web01", 1000, events=10)
    assert not budgets.admit("web01", 1000, events=10)


def test_sources_do_not_share_a_budget_and_a_frame_larger_than_the_burst_still_passes() -> None:
    clock = Clock()
    budgets = Budgets(0, 1000, 1.0, Stats(), clock=clock)  # 1000 bytes/s, events free
    assert budgets.admit("web01", 50_000)  # tokens positive: admitted, then deep in debt
    assert not budgets.admit("web01", 1)
    assert budgets.admit("web02", 10)
    clock.now += 48.0
    assert not budgets.admit("web01", 1)  # the debt is paid off over time, not forgiven
    clock.now += 2.0
    assert budgets.admit("web01", 1)


def test_events_known_after_decoding_are_charged_and_zero_rates_are_unlimited() -> None:
    clock = Clock()
    budgets = Budgets(10, 0, 1.0, Stats(), clock=clock)
    assert budgets.admit("web01", 100)
    budgets.charge("web01", 500)  # a frame of 500 events, counted once decoded
    assert not budgets.admit("web01", 100)
    free = Budgets(0, 0, 1.0, Stats(), clock=clock)
    assert all(free.admit("web01", 1 << 30, events=1 << 20) for _ in range(100))
    assert free.refused == {}
