"""Rule state: throttles, threshold windows and ``for`` holds, bounded in memory and persisted.

Each kind keeps at most ``limit`` keys (the least recently used go first). Changes are
marked dirty and written by the master in one transaction per tick and at shutdown, so a
restart continues where the last run stopped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reactord.protocol.events import Event

K = tuple[str, str]  # (rule name, key)
V = TypeVar("V")


class Bounded(Generic[V]):
    """An LRU map with a size limit that remembers which keys changed since the last flush."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: OrderedDict[K, V] = OrderedDict()
        self.dirty: set[K] = set()
        self.evicted = 0

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        self.dirty.add(key)
        while len(self.items) > self.limit:
            old, _ = self.items.popitem(last=False)
            self.dirty.add(old)
            self.evicted += 1

    def pop(self, key: K) -> None:
        if self.items.pop(key, None) is not None:
            self.dirty.add(key)

    def __len__(self) -> int:
        return len(self.items)

    def take_dirty(self) -> Iterator[tuple[K, V | None]]:
        dirty, self.dirty = self.dirty, set()
        for key in dirty:
            yield key, self.items.get(key)


@dataclass(slots=True)
class Hold:
    """A ``for:`` condition that holds since ``since``; ``fired`` once it has fired."""

    since: float
    event: Event
    fired: bool = False


class RuleState:
    def __init__(self, limit: int = 100_000) -> None:
        self.throttles: Bounded[float] = Bounded(limit)
        self.windows: Bounded[deque[float]] = Bounded(limit)
        self.holds: Bounded[Hold] = Bounded(limit)

    def kinds(self) -> dict[str, Bounded[Any]]:
        return {"throttle": self.throttles, "window": self.windows, "hold": self.holds}

    def forget_rules(self, keep: set[str]) -> None:
        """Drop the state of rules that are no longer loaded."""
        for table in self.kinds().values():
            for key in [k for k in table.items if k[0] not in keep]:
                table.pop(key)

    def size(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.kinds().items()}
