"""In-process counters of what the master received, accepted, dropped and did.

Counters are plain integers keyed by a dotted name (``drop.unauthenticated``); ``reactord
status`` shows them and the metrics endpoint exports them.
"""

from __future__ import annotations

from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))
