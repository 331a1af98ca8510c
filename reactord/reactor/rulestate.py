"""Rule state: throttles, threshold windows and ``for`` holds, bounded in memory and persisted.

Each kind keeps at most ``limit`` keys (the least recently used go first); the holds, which
keep the event that started them, are also bounded by bytes. Changes are marked dirty and
written in the transaction of the event that made them (reactord.store.statetable), so after any
stop or crash the rule state and the event log agree.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reactord.protocol.events import Event

K = tuple[str, str]  # (rule name, key)
V = TypeVar("V")


class Bounded(Generic[V]):
    """An LRU map with a size limit that remembers which keys changed since the last flush."""

    def __init__(
        self, limit: int, *, max_bytes: int | None = None, weigh: Callable[[V], int] | None = None
    ) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.weigh = weigh
        self.items: OrderedDict[K, V] = OrderedDict()
        self.weights: dict[K, int] = {}
        self.bytes = 0
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
        if self.weigh is not None:
            weight = self.weigh(value)
            self.bytes += weight - self.weights.get(key, 0)
            self.weights[key] = weight
        while len(self.items) > self.limit or (
            self.max_bytes is not None and self.bytes > self.max_bytes and len(self.items) > 1
        ):
            old, _ = self.items.popitem(last=False)
            self.bytes -= self.weights.pop(old, 0)
            self.dirty.add(old)
            self.evicted += 1

    def pop(self, key: K) -> None:
        if self.forget(key):
            self.dirty.add(key)

    def forget(self, key: K) -> bool:
        """Drop ``key`` from memory without marking it for a write; whether it was there."""
        if self.items.pop(key, None) is None:
            return False
        self.bytes -= self.weights.pop(key, 0)
        return True

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


def _hold_weight(hold: Hold) -> int:
    return 600 + 4 * len(hold.event.packed_data())


class RuleState:
    def __init__(self, limit: int = 100_000, hold_bytes: int = 64 << 20) -> None:
        self.throttles: Bounded[float] = Bounded(limit)
        self.windows: Bounded[deque[float]] = Bounded(limit)
        self.holds: Bounded[Hold] = Bounded(limit, max_bytes=hold_bytes, weigh=_hold_weight)
        self._kinds: dict[str, Bounded[Any]] = {
            "throttle": self.throttles,
            "window": self.windows,
            "hold": self.holds,
        }

    def kinds(self) -> dict[str, Bounded[Any]]:
        return self._kinds

    def forget_rules(self, keep: set[str]) -> None:
        """Drop the state of rules that are no longer loaded."""
        for table in self.kinds().values():
            for key in [k for k in table.items if k[0] not in keep]:
                table.pop(key)

    def size(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.kinds().items()}
