"""Ownership rounds over an in-memory CAS store: a partition whose lease lapsed while held (the
engine did not answer for a while), and whose actions were refused meanwhile, resumes its
pending actions when the lease is renewed."""

from __future__ import annotations

import asyncio
import time

import pytest

from reactord.base.errors import ClusterError
from reactord.base.stats import Stats
from reactord.cluster.ownership import Ownership


class Store:
    """A KV bucket with compare-and-set, in memory; ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, int]] = {}
        self.revision = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ClusterError("the engine does not answer")

    def _write(self, key: str, value: bytes) -> int:
        self.revision += 1
        self.data[key] = (value, self.revision)
        return self.revision

    async def create(self, key: str, value: bytes) -> int | None:
        self._check()
        return None if key in self.data else self._write(key, value)

    async def update(self, key: str, value: bytes, revision: int) -> int | None:
        self._check()
        found = self.data.get(key)
        return self._write(key, value) if found is not None and found[1] == revision else None

    async def delete(self, key: str, revision: int) -> bool:
        self._check()
        found = self.data.get(key)
        if found is None or found[1] != revision:
            return False
        del self.data[key]
        return True

    async def get(self, key: str) -> tuple[bytes, int] | None:
        self._check()
        return self.data.get(key)

    async def put(self, key: str, value: bytes) -> int:
        self._check()
        return self._write(key, value)


def test_a_lease_that_lapsed_while_held_resumes_its_partition_when_renewed() -> None:
    async def scenario() -> list[int]:
        store, fences = Store(), Store()
        taken: list[int] = []
        ownership = Ownership(
            "m0",
            2,
            0.4,
            store,
            fences,
            applied=lambda: 0,
            take_over=taken.append,
            stats=Stats(),
        )
        await ownership.round(time.monotonic())
        assert sorted(taken) == [0, 1] and ownership.owns(0)  # taken at the first round
        taken.clear()
        await ownership.round(time.monotonic())
        assert taken == []  # renewed in time: nothing to resume
        store.down = fences.down = True  # the engine elects a leader: rounds fail, the leases lapse
        with pytest.raises(ClusterError):
            await ownership.round(time.monotonic())
        deadline = time.monotonic() + 5
        while ownership.owns(0) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # past valid_until: held, but not for sure
        assert ownership.holds(0) and not ownership.owns(0)
        ownership.refused_while_held(0)  # an action of partition 0 was refused in the lapse
        store.down = fences.down = False
        await ownership.round(time.monotonic())
        assert ownership.owns(0) and ownership.owns(1)
        await ownership.round(time.monotonic())  # resumed once, not at every round
        return sorted(taken)

    assert asyncio.run(scenario()) == [0]  # what was refused meanwhile runs: resumed
