"""Which partitions this master owns: leases in ``rd_leases`` kept by compare-and-set,
assigned by rendezvous over the live members, and each partition's fence in ``rd_state``
(its owner and the stream sequence it had applied), written with CAS at every round, first:
a member paused past its lease learns from the engine's refusal that it lost the partition
before it renews or runs anything more (``reactord.cluster.leases`` has the lease rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from reactord.base.errors import ClusterError
from reactord.base.stats import Stats
from reactord.cluster.engine import KvBucket
from reactord.cluster.leases import PartitionLeases, rendezvous
from reactord.protocol import codec

log = logging.getLogger("reactord.cluster")


class Ownership:
    """This member's partitions: leases kept by CAS, assigned by rendezvous, and each
    partition's fence in ``rd_state`` (see the module docstring)."""

    def __init__(
        self,
        member: str,
        partitions: int,
        lease_ttl: float,
        leases: KvBucket,
        fences: KvBucket,
        *,
        applied: Callable[[], int],
        take_over: Callable[[int], None],
        stats: Stats,
    ) -> None:
        self.member = member
        self.partitions = partitions
        self.applied = applied  # the stream sequence this master has applied
        self.take_over = take_over  # called with a partition just acquired
        self.stats = stats
        self.kv = leases
        self.fences = fences
        self.leases = PartitionLeases(leases, member)
        self.ttl = lease_ttl
        self.owned: dict[int, int] = {}  # partition -> lease revision
        self.valid_until: dict[int, float] = {}  # partition -> monotonic time
        self.fence_rev: dict[int, int] = {}  # partition -> revision of our last fence write
        self.fenced_seq: dict[int, int] = {}  # partition -> the applied sequence last written
        self.refused: set[int] = set()  # held partitions whose actions were refused in a lapse
        # what the bucket's watch said, and when (monotonic): a key that expires says nothing
        # (no delete marker), so a member or holder not heard from for a TTL is gone
        self._members: dict[str, float] = {}
        self._holders: dict[int, tuple[str, float]] = {}

    @property
    def members(self) -> list[str]:
        """The live members: renewed within the TTL (each renews four times a TTL)."""
        now = time.monotonic()
        return sorted(name for name, seen in self._members.items() if now - seen < self.ttl)

    @property
    def holders(self) -> dict[int, str]:
        """Each partition's holder, as far as this member can tell."""
        now = time.monotonic()
        return {p: name for p, (name, seen) in self._holders.items() if now - seen < self.ttl}

    def holds(self, partition: int) -> bool:
        """Whether this member thinks it owns ``partition`` (it may have been paused since)."""
        return partition in self.owned

    def owns(self, partition: int) -> bool:
        """Whether it owns ``partition`` for sure: held, and renewed recently enough that no
        successor can have taken it (the monotonic clock counts a pause too)."""
        return partition in self.owned and time.monotonic() < self.valid_until.get(partition, 0.0)

    async def on_change(self, key: str, value: bytes | None) -> None:
        if key.startswith("m."):
            name = key[2:]
            if value is None:
                self._members.pop(name, None)
            else:
                self._members[name] = time.monotonic()
        elif key.startswith("p") and key[1:].isdigit():
            if value is None:
                self._holders.pop(int(key[1:]), None)
            else:
                self._holders[int(key[1:])] = (value.decode(errors="replace"), time.monotonic())

    async def run(self) -> None:
        """Every quarter TTL: say we live, keep or let go what we hold, take what is ours."""
        while True:
            started = time.monotonic()
            try:
                await self.round(started)
            except ClusterError as exc:
                self.stats.incr("cluster.engine_errors")
                log.warning("cluster: ownership round failed: %s", exc)
            await asyncio.sleep(max(0.05, self.ttl / 4 - (time.monotonic() - started)))

    async def round(self, started: float) -> None:
        await self.kv.put(f"m.{self.member}", self.member.encode())
        live = set(self.members) | {self.member}
        partitions = self.partitions
        want = {p for p in range(partitions) if rendezvous(p, live) == self.member}
        for p in sorted(self.owned):
            if p not in want:
                revision = self.owned[p]
                self.drop(p, "handed over to " + rendezvous(p, live))
                await self.leases.release(p, revision)
                continue
            # the fence first: a member that was paused past its lease learns it here, its
            # write refused by the engine, before it renews or runs anything more
            if not await self._fence(p):
                self.drop(p, "its fence was written by another master (this one was paused or cut off)")
                continue
            lease = await self.leases.renew(p, self.owned[p])
            if lease is None:
                self.stats.incr("cluster.leases_lost")
                self.drop(p, "its lease moved on (this master was paused or cut off)")
                continue
            self.owned[p] = lease.revision
            self.valid_until[p] = started + self.ttl * 0.75
            if p in self.refused:
                # Held all along, but not for sure for a while (rounds failed or came late: the
                # engine was electing a leader, the master was starved), and actions were refused
                # meanwhile: they are still pending, and no other master will run them (this
                # one never dropped the partition). Resume them as a taker would.
                self.refused.discard(p)
                self.stats.incr("cluster.leases_lapsed")
                log.warning(
                    "cluster: partition %d renewed after a lapse; resuming the actions refused meanwhile", p
                )
                self.take_over(p)
        for p in sorted(want - set(self.owned)):
            lease = await self.leases.acquire(p)
            if lease is None:
                continue
            if not await self._fence(p, initial=True):
                await self.leases.release(p, lease.revision)
                continue
            self.owned[p] = lease.revision
            self.valid_until[p] = started + self.ttl * 0.75
            self.take_over(p)

    async def _fence(self, p: int, *, initial: bool = False) -> bool:
        """Write partition ``p``'s fence (owner, sequence applied) with CAS: taking it over
        (``initial``: from whatever it was) or going on from our last write. False: refused."""
        key = f"p{p}"
        value = codec.pack({"owner": self.member, "applied": self.applied(), "at": time.time()})
        if initial:
            found = await self.fences.get(key)
            revision = (
                await self.fences.create(key, value)
                if found is None
                else await self.fences.update(key, value, found[1])
            )
        else:
            revision = await self.fences.update(key, value, self.fence_rev.get(p, 0))
        if revision is None:
            self.stats.incr("cluster.fenced_writes")
            log.warning("cluster: the fence of partition %d refused this master's write", p)
            return False
        self.fence_rev[p] = revision
        self.fenced_seq[p] = self.applied()
        return True

    def refused_while_held(self, p: int) -> None:
        """An action of ``p`` was refused because its lease was not sure (a lapse): resume
        the partition's pending actions at the next renewal (if it is dropped instead, its
        taker resumes them)."""
        if p in self.owned:
            self.refused.add(p)

    def drop(self, p: int, why: str) -> None:
        self.refused.discard(p)
        self.owned.pop(p, None)
        self.valid_until.pop(p, None)
        self.fence_rev.pop(p, None)
        self.fenced_seq.pop(p, None)
        log.warning("cluster: dropped partition %d: %s", p, why)

    async def release_all(self) -> None:
        for p, revision in list(self.owned.items()):
            with contextlib.suppress(ClusterError):
                await self.leases.release(p, revision)
        self.owned.clear()
        with contextlib.suppress(ClusterError):
            found = await self.kv.get(f"m.{self.member}")
            if found is not None:
                await self.kv.delete(f"m.{self.member}", found[1])
