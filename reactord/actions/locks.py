"""Per-key locks: actions whose ``lock:`` renders to the same key run one at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLocks:
    """A lock per key, made on first use and forgotten once nobody holds or waits for it, so
    that keys made from event values do not pile up."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, firings using it)

    def names(self) -> set[str]:
        """The keys held or waited for now."""
        return set(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        """Hold the lock named ``key`` (none when ``key`` is None)."""
        if key is None:
            yield
            return
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
