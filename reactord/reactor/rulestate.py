"""Rule state: throttles, threshold windows, ``for`` holds, the partial matches of
correlations and sequences, the waits of absences and the level of fleet conditions, bounded
in memory and persisted.

Each kind keeps at most ``limit`` keys (the least recently used go first); the holds, which
keep the event that started them, are also bounded by bytes. Correlations, sequences and
absences keep each rule's keys apart, at most its ``max_keys`` (the least recently used of
that rule go first, counted per rule), and all of them together within a byte budget.
Changes are marked dirty and taken as plain rows (``take_changes``) that are written in the
transaction of the event that made them (``RuleStore.writes``), so after any stop or crash
the rule state and the event log agree. Storage sees only plain values: this module turns
them into state and back.
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

    def has_dirty(self) -> bool:
        return bool(self.dirty)

    def clear_dirty(self) -> None:
        """Nothing to write, but the deletion of keys no longer held (dropped by a limit as
        they were loaded: their rows must go too)."""
        self.dirty = {key for key in self.dirty if key not in self.items}

    def clean(self, key: K) -> None:
        self.dirty.discard(key)

    def drop_rules(self, keep: set[str]) -> None:
        for key in [k for k in self.items if k[0] not in keep]:
            self.pop(key)


@dataclass(slots=True)
class ByteBudget:
    """Bytes several ``PerRule`` maps share: ``used`` of at most ``limit``."""

    limit: int
    used: int = 0


class PerRule(Generic[V]):
    """One ``Bounded`` per rule, each at most that rule's ``limit(rule)`` keys; all of them,
    and the other maps sharing ``budget``, together at most its bytes (past it, the rule being
    written gives up its least recently used keys). ``evicted`` counts per rule: ``rules
    list`` shows it."""

    def __init__(self, limit: Callable[[str], int], budget: ByteBudget, weigh: Callable[[V], int]) -> None:
        self.limit = limit
        self.budget = budget
        self.weigh = weigh
        self.tables: dict[str, Bounded[V]] = {}
        self.evicted: dict[str, int] = {}
        self.bytes = 0

    def _table(self, rule: str) -> Bounded[V]:
        table = self.tables.get(rule)
        if table is None:
            table = self.tables[rule] = Bounded(self.limit(rule), weigh=self.weigh)
        return table

    def _change(self, rule: str, change: Callable[[Bounded[V]], Any]) -> Any:
        """Run ``change`` on ``rule``'s table, keeping the byte and eviction counts."""
        table = self._table(rule)
        bytes_before, evicted_before = table.bytes, table.evicted
        result = change(table)
        self.bytes += table.bytes - bytes_before
        self.budget.used += table.bytes - bytes_before
        if table.evicted != evicted_before:
            self.evicted[rule] = self.evicted.get(rule, 0) + table.evicted - evicted_before
        return result

    def get(self, key: K) -> V | None:
        table = self.tables.get(key[0])
        return None if table is None else table.get(key)

    def put(self, key: K, value: V) -> None:
        def put(table: Bounded[V]) -> None:
            table.put(key, value)
            while len(table) > 1 and self.budget.used + table.bytes - before > self.budget.limit:
                table.pop(next(iter(table.items)))
                table.evicted += 1

        before = self._table(key[0]).bytes
        self._change(key[0], put)

    def pop(self, key: K) -> None:
        if key[0] in self.tables:
            self._change(key[0], lambda table: table.pop(key))

    def forget(self, key: K) -> bool:
        return key[0] in self.tables and bool(self._change(key[0], lambda table: table.forget(key)))

    def keys_of(self, rule: str) -> int:
        table = self.tables.get(rule)
        return 0 if table is None else len(table)

    def all_items(self) -> Iterator[tuple[K, V]]:
        for table in list(self.tables.values()):
            yield from list(table.items.items())

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())

    def take_dirty(self) -> Iterator[tuple[K, V | None]]:
        for table in self.tables.values():
            yield from table.take_dirty()

    def has_dirty(self) -> bool:
        return any(t.dirty for t in self.tables.values())

    def clear_dirty(self) -> None:
        for table in self.tables.values():
            table.clear_dirty()

    def clean(self, key: K) -> None:
        table = self.tables.get(key[0])
        if table is not None:
            table.dirty.discard(key)

    def drop_rules(self, keep: set[str]) -> None:
        for rule in [r for r in self.tables if r not in keep]:
            self._change(rule, _empty)

    def sweep(self, rule: str, expired: Callable[[V], bool], *, full: bool = False) -> int:
        """Drop ``rule``'s keys that ``expired`` says are (a window that has passed): the least
        recently used ones until the first that is not, or (``full``) every one. How many."""
        table = self.tables.get(rule)
        if table is None:
            return 0

        def sweep(table: Bounded[V]) -> int:
            if full:
                gone = [key for key, value in table.items.items() if expired(value)]
                for key in gone:
                    table.pop(key)
                return len(gone)
            dropped = 0
            while table.items:
                key, value = next(iter(table.items.items()))
                if not expired(value):
                    break
                table.pop(key)
                dropped += 1
            return dropped

        return int(self._change(rule, sweep))

    def set_limits(self) -> None:
        """Take each rule's limit again (after a reload); a lower one drops the oldest keys."""

        def trim(table: Bounded[V]) -> None:
            while len(table) > table.limit:
                table.pop(next(iter(table.items)))
                table.evicted += 1

        for rule, table in self.tables.items():
            table.limit = self.limit(rule)
            self._change(rule, trim)


def _rules_in(table: Bounded[Any] | PerRule[Any]) -> set[str]:
    if isinstance(table, PerRule):
        return set(table.tables)
    return {key[0] for key in table.items}


def _empty(table: Bounded[Any]) -> None:
    for key in list(table.items):
        table.pop(key)


@dataclass(slots=True)
class Hold:
    """A ``for:`` condition that holds since ``since``; ``fired`` once it has fired."""

    since: float
    event: Event
    fired: bool = False


def _hold_weight(hold: Hold) -> int:
    return 600 + 4 * len(hold.event.packed_data())


#: A correlation's or a sequence's partial match: pattern name -> (when matched, the event),
#: in the order they matched.
Partial = dict[str, tuple[float, Event]]


@dataclass(slots=True)
class Wait:
    """An absence waiting since ``event`` (its first pattern) until ``deadline``."""

    deadline: float
    event: Event


def _partial_weight(partial: Partial) -> int:
    return 200 + sum(400 + 4 * len(event.packed_data()) for _, event in partial.values())


def _wait_weight(wait: Wait) -> int:
    return 600 + 4 * len(wait.event.packed_data())


class RuleState:
    def __init__(
        self,
        limit: int = 100_000,
        hold_bytes: int = 64 << 20,
        max_keys: Callable[[str], int] = lambda rule: 1_000_000,
        match_bytes: int = 256 << 20,
    ) -> None:
        self.throttles: Bounded[float] = Bounded(limit)
        self.windows: Bounded[deque[float]] = Bounded(limit)
        self.holds: Bounded[Hold] = Bounded(limit, max_bytes=hold_bytes, weigh=_hold_weight)
        # (until the rules are known, as the stored rows are loaded, no rule's keys are cut
        # short: the engine sets each rule's own max_keys then, ``PerRule.set_limits``)
        budget = ByteBudget(match_bytes)
        self.partials: PerRule[Partial] = PerRule(max_keys, budget, _partial_weight)
        self.waits: PerRule[Wait] = PerRule(max_keys, budget, _wait_weight)
        self.levels: Bounded[bool] = Bounded(limit)
        #: The definition each rule over several events had when its state was made (a digest).
        self.specs: Bounded[str] = Bounded(limit)
        self._kinds: dict[str, Bounded[Any] | PerRule[Any]] = {
            "throttle": self.throttles,
            "window": self.windows,
            "hold": self.holds,
            "partial": self.partials,
            "wait": self.waits,
            "level": self.levels,
            "spec": self.specs,
        }

    def kinds(self) -> dict[str, Bounded[Any] | PerRule[Any]]:
        return self._kinds

    def forget_rules(self, keep: set[str]) -> None:
        """Drop the state of rules that are no longer loaded."""
        for table in self.kinds().values():
            table.drop_rules(keep)

    def forget_rule(self, rule: str) -> None:
        """Drop all of one rule's state (its definition changed)."""
        keep = {name for table in self.kinds().values() for name in _rules_in(table)} - {rule}
        for table in self.kinds().values():
            table.drop_rules(keep)

    def keys_of(self, rule: str) -> dict[str, int]:
        """How many keys ``rule`` keeps (correlations, sequences, absences), and how many its
        limit dropped since the master started."""
        keys = self.partials.keys_of(rule) + self.waits.keys_of(rule)
        return {"keys": keys, "dropped": self.partials.evicted.get(rule, 0) + self.waits.evicted.get(rule, 0)}

    def size(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.kinds().items()}

    def load_rows(self, rows: Iterable[Change]) -> None:
        """Fill the state from stored rows (at start); nothing is left to write but the
        deletion of rows a limit dropped as they were loaded."""
        for kind, rule, key, value in rows:
            _put(self, kind, (rule, key), value)
        for table in self.kinds().values():
            table.clear_dirty()

    def take_changes(self) -> tuple[list[Change], Changed]:
        """What changed since the last call, as plain rows, and which keys (for ``restore``)."""
        changes: list[Change] = []
        changed: Changed = []
        for kind, table in self.kinds().items():
            if not table.has_dirty():
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
            tables[kind].clean(key)


def _put(state: RuleState, kind: str, key: K, value: Any) -> None:
    if kind == "throttle":
        state.throttles.put(key, float(value))
    elif kind == "window":
        state.windows.put(key, deque(value))
    elif kind == "hold":
        state.holds.put(key, Hold(value["since"], Event(**value["event"]), value["fired"]))
    elif kind == "partial":
        state.partials.put(key, {name: (at, Event(**event)) for name, (at, event) in value.items()})
    elif kind == "wait":
        state.waits.put(key, Wait(value["deadline"], Event(**value["event"])))
    elif kind == "level":
        state.levels.put(key, bool(value))
    elif kind == "spec":
        state.specs.put(key, str(value))


def _plain(kind: str, value: Any) -> Any:
    if kind == "window":
        return list(value)
    if kind == "hold":
        return {"since": value.since, "fired": value.fired, "event": plain_event(value.event)}
    if kind == "partial":
        return {name: [at, plain_event(event)] for name, (at, event) in value.items()}
    if kind == "wait":
        return {"deadline": value.deadline, "event": plain_event(value.event)}
    return value


def plain_event(e: Event) -> dict[str, Any]:
    """An event as rule state keeps it (``Event(**plain)`` makes it again)."""
    return {
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
    }
