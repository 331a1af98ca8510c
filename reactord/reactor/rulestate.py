"""Rule state: throttles, threshold windows and ``for`` holds, bounded in memory and persisted.

Each kind keeps at most ``limit`` keys (the least recently used go first); the holds, which
keep the event that started them, are also bounded by bytes. Changes are marked dirty and
taken as plain rows (``take_changes``) that are written in the transaction of the event that
made them (``RuleStore.writes``), so after any stop or crash the rule state and the event log
agree. Storage sees only plain values: this module turns them into state and back.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reactord.protocol.events import Event

K = tuple[str, str]  # (rule name, key)
#: A change as storage keeps it: (kind, rule, key, plain value or None when deleted).
Change = tuple[str, str, str, Any]
#: Which keys a ``take_changes`` took, to put them back if their write fails: (kind, key).
Changed = list[tuple[str, K]]
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

    def load_rows(self, rows: Iterable[Change]) -> None:
        """Fill the state from stored rows (at start); nothing is left dirty."""
        for kind, rule, key, value in rows:
            _put(self, kind, (rule, key), value)
        for table in self.kinds().values():
            table.dirty.clear()

    def take_changes(self) -> tuple[list[Change], Changed]:
        """What changed since the last call, as plain rows, and which keys (for ``restore``)."""
        changes: list[Change] = []
        changed: Changed = []
        for kind, table in self.kinds().items():
            if not table.dirty:
                continue
            for (rule, key), value in table.take_dirty():
                changed.append((kind, (rule, key)))
                changes.append((kind, rule, key, None if value is None else _plain(kind, value)))
        return changes, changed

    def restore(self, changed: Changed, read: Callable[[str, str, str], Any]) -> None:
        """Put these keys back as storage has them (``read(kind, rule, key)``): their write failed."""
        tables = self.kinds()
        for kind, key in changed:
            value = read(kind, *key)
            tables[kind].forget(key)
            if value is not None:
                _put(self, kind, key, value)
            tables[kind].dirty.discard(key)


def _put(state: RuleState, kind: str, key: K, value: Any) -> None:
    if kind == "throttle":
        state.throttles.put(key, float(value))
    elif kind == "window":
        state.windows.put(key, deque(value))
    elif kind == "hold":
        state.holds.put(key, Hold(value["since"], Event(**value["event"]), value["fired"]))


def _plain(kind: str, value: Any) -> Any:
    if kind == "window":
        return list(value)
    if kind == "hold":
        e = value.event
        return {
            "since": value.since,
            "fired": value.fired,
            "event": {
                "id": e.id,
                "tag": e.tag,
                "source": e.source,
                "time": e.time,
                "data": e.data,
                "seq": e.seq,
                "epoch": e.epoch,
                "causation": e.causation,
                "depth": e.depth,
                "received": e.received,
            },
        }
    return value
