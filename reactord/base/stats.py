"""In-process counters, labeled counters, histograms and an event rate: what the master did.

Plain counters are keyed by a dotted name (``drop.namespace``); ``reactord status`` shows
them and the metrics endpoint exports everything here. Nothing in this module knows about
Prometheus: reactord/metrics.py translates.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value


class Rate:
    """Events per second over the last ``span`` seconds, in one-second buckets."""

    def __init__(self, span: int = 60) -> None:
        self.span = span
        self.buckets = [0] * span
        self.stamps = [-1] * span

    def add(self, amount: int, now: float) -> None:
        second = int(now)
        slot = second % self.span
        if self.stamps[slot] != second:
            self.stamps[slot], self.buckets[slot] = second, 0
        self.buckets[slot] += amount

    def per_second(self, now: float) -> float:
        second = int(now)
        recent = sum(
            b for b, s in zip(self.buckets, self.stamps, strict=True) if second - self.span < s <= second
        )
        return recent / self.span


class Stats:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._labeled: dict[str, Counter[Labels]] = {}
        self._histograms: dict[str, dict[Labels, Histogram]] = {}
        self.event_rate = Rate()

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def incr_labeled(self, name: str, amount: int = 1, **labels: str) -> None:
        self._labeled.setdefault(name, Counter())[tuple(sorted(labels.items()))] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self._histograms.setdefault(name, {}).setdefault(key, Histogram()).observe(value)

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def labeled(self) -> dict[str, dict[Labels, int]]:
        return {name: dict(values) for name, values in self._labeled.items()}

    def histograms(self) -> dict[str, dict[Labels, Histogram]]:
        return self._histograms
