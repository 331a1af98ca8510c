"""Who owns which partition: leases in the engine's KV bucket ``rd_leases``, written with
compare-and-set, and the rendezvous rule saying who should own each partition.

The rule (DESIGN.md §9): partition ``p`` has one owner at a time. A member *acquires* ``p``
by creating the key ``p<p>`` (refused if it exists), keeps it by *renewing* well within the
bucket's TTL, each renewal an update conditioned on the revision it wrote last, and lets go
by *releasing* (a delete conditioned the same way). The bucket's TTL is the lease's: a key
not renewed for that long disappears, and anyone may acquire it.

Fencing comes from the revision. Whoever wrote since (a successor after the TTL, or anyone
at all) moved the key past the holder's revision, so the holder's renewal is refused and it
learns it lost ``p``: it must drop the partition at once, never write for it again, and
acquire anew if it still should own it. A paused holder that wakes up after its successor
took over cannot renew, and (with the same check on the rule state's writes) cannot write.

Rendezvous (highest random weight): among the live members, ``p`` belongs to the one whose
``hash(member, p)`` is highest. Every member computes the same answer from the same list,
and when a member leaves, only its partitions move (each to its next-highest member).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from reactord.base.errors import ClusterError
from reactord.cluster.subjects import stable_hash


class LeaseStore(Protocol):
    """The compare-and-set key-value operations leases need (``engine.KvBucket`` has them).

    Revisions are the engine's: strictly increasing, and a refused write returns None."""

    async def create(self, key: str, value: bytes) -> int | None:
        """Write ``key`` only if it does not exist; its revision, None if it does."""
        ...

    async def update(self, key: str, value: bytes, revision: int) -> int | None:
        """Write ``key`` only if its last revision is ``revision``; the new one, or None."""
        ...

    async def delete(self, key: str, revision: int) -> bool:
        """Delete ``key`` only if its last revision is ``revision``."""
        ...

    async def get(self, key: str) -> tuple[bytes, int] | None:
        """The value and revision of ``key``, None if it is absent (never written, deleted or
        expired)."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of ``partition`` by ``owner``, as written at ``revision``."""

    partition: int
    owner: str
    revision: int


def lease_key(partition: int) -> str:
    return f"p{partition}"


class PartitionLeases:
    """The leases of one member (``member``: its name, unique in the cluster)."""

    def __init__(self, store: LeaseStore, member: str) -> None:
        if not member:
            raise ClusterError("a cluster member needs a name")
        self.store = store
        self.member = member

    async def acquire(self, partition: int) -> Lease | None:
        """Take ``partition`` if nobody holds it; the lease, or None if someone does."""
        revision = await self.store.create(lease_key(partition), self.member.encode())
        return None if revision is None else Lease(partition, self.member, revision)

    async def renew(self, partition: int, revision: int) -> Lease | None:
        """Keep ``partition``, held since ``revision``; the renewed lease, or None when the
        key moved on since (ownership lost: drop the partition now)."""
        new = await self.store.update(lease_key(partition), self.member.encode(), revision)
        return None if new is None else Lease(partition, self.member, new)

    async def release(self, partition: int, revision: int) -> bool:
        """Let ``partition`` go if the lease at ``revision`` is still ours; False if it was not."""
        return await self.store.delete(lease_key(partition), revision)

    async def holder(self, partition: int) -> Lease | None:
        """Who holds ``partition`` now, as the engine says; None if nobody."""
        found = await self.store.get(lease_key(partition))
        if found is None:
            return None
        value, revision = found
        return Lease(partition, value.decode(errors="replace"), revision)


def rendezvous(partition: int, members: Iterable[str]) -> str:
    """The member that should own ``partition``: the highest ``hash(member, partition)``
    (ties, all but impossible, go to the greater name)."""
    best = max(members, key=lambda m: (stable_hash(m, str(partition)), m), default=None)
    if best is None:
        raise ClusterError(f"no live member to own partition {partition}")
    return best


def assignment(partitions: int, members: Iterable[str]) -> dict[int, str]:
    """The owner of every partition in ``range(partitions)`` among ``members``."""
    live = sorted(set(members))
    return {p: rendezvous(p, live) for p in range(partitions)}
