"""The edge of cluster mode: what a master sends to the engine's event stream.

Minion batches and the master's own events go to the stream instead of the local log (the
pipeline's ``forwarder``); a minion is acknowledged once the engine has stored its batch.
Each minion is a lane of its own, published one item after another (a source's events are
in the stream in order, one batch never ahead of an earlier one); the master's own events and
done records share one lane, up to 64 in flight, a done record only once everything before it
is stored. Records stay under ``RECORD_BYTES`` (events are split over several).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reactord.base.errors import ClusterError
from reactord.base.stats import Stats
from reactord.cluster import records
from reactord.cluster.engine import Engine
from reactord.cluster.subjects import event_subject, partition_of
from reactord.pipeline import EventPipeline
from reactord.protocol import codec
from reactord.protocol.events import Event
from reactord.store.audit import DeadLetter

log = logging.getLogger("reactord.cluster")

#: Bytes on their way to the engine past which ingest waits.
MAX_FORWARD_BYTES = 32 << 20
#: A record's size at most (events are split over several): well within the engine's
#: max_payload, which the master checks at start.
RECORD_BYTES = 256 << 10
_MASTER_LANE = "\0master"


@dataclass
class _Item:
    subject: str
    payload: bytes | None  # None: nothing to store, only acknowledgements to send
    msg_id: str
    delivery: dict[tuple[str, str], int] = field(default_factory=dict)
    ended: list[tuple[str, str, dict[str, Any]]] | None = None  # a done record still taking more
    first: str = ""  # the master's events: the first one's id (``settled`` waits on it)
    weight: int = 0  # what it counts for in the publisher's bound

    def __post_init__(self) -> None:
        self.weight = (
            len(self.payload or b"") + 64 + sum(64 + len(codec.pack(e[2])) for e in self.ended or ())
        )


class Publisher:
    """The pipeline's forwarder in cluster mode (see the module docstring)."""

    def __init__(
        self, partitions: int, engine: Callable[[], Engine], pipeline: EventPipeline, stats: Stats
    ) -> None:
        self.partitions = partitions
        self.engine = engine  # made when the master starts
        self.pipeline = pipeline
        self.stats = stats
        self.lanes: dict[str, deque[_Item]] = {}
        self.bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stored: dict[str, asyncio.Future[None]] = {}  # the master's events, by first id

    def send(self, events: list[Event], delivery: dict[tuple[str, str], int]) -> None:
        partitions = self.partitions
        if not delivery:  # the master's own events: one source, published once, never lost
            for chunk in _by_size(events):
                first = chunk[0]
                msg_id = f"act:{first.action}" if first.action and len(events) == 1 else f"ev:{first.id}"
                payload = records.pack_events(chunk, tracked=False)
                self._stored[first.id] = asyncio.get_running_loop().create_future()
                item = _Item(event_subject(first.source, partitions), payload, msg_id, first=first.id)
                self._queue(_MASTER_LANE, item)
            return
        by_source: dict[str, list[Event]] = {}
        for event in events:
            by_source.setdefault(event.source, []).append(event)
        for (source, epoch), seq in delivery.items():
            mine = [e for e in by_source.get(source, []) if e.epoch == epoch]
            subject = event_subject(source, partitions)
            chunks = _by_size(mine) if mine else [[]]
            for index, chunk in enumerate(chunks):
                packed = records.pack_events(chunk, tracked=True) if chunk else None
                msg_id = f"{source}:{epoch}:{chunk[0].seq}:{chunk[-1].seq}" if chunk else ""
                last = index == len(chunks) - 1  # the minion is acknowledged after its last chunk
                self._queue(source, _Item(subject, packed, msg_id, {(source, epoch): seq} if last else {}))

    def publish_dead(self, source: str, letter: DeadLetter) -> None:
        subject = f"rd.ev.{partition_of(source, self.partitions)}.=dead"
        msg_id = f"dead:{letter.id}:{letter.status}:{letter.attempts}:{letter.updated}"
        self._queue(_MASTER_LANE, _Item(subject, records.pack_dead(letter), msg_id))

    def publish_done(self, source: str, action_id: str, status: str, fields: dict[str, Any]) -> None:
        """An action ended: said in a done record of its partition, several to a record while
        the lane is busy."""
        subject = f"rd.ev.{partition_of(source, self.partitions)}.=done"
        queue = self.lanes.get(_MASTER_LANE)
        if queue:
            for item in reversed(queue):
                if item.ended is not None and item.subject == subject and item.weight < RECORD_BYTES:
                    size = 64 + len(codec.pack(fields))
                    item.ended.append((action_id, status, fields))
                    item.weight += size
                    self.bytes += size
                    return
        self._queue(_MASTER_LANE, _Item(subject, None, "", ended=[(action_id, status, fields)]))

    def _queue(self, lane: str, item: _Item) -> None:
        queue = self.lanes.get(lane)
        self.bytes += item.weight
        if self.bytes > MAX_FORWARD_BYTES:
            self._room.clear()
        if queue is not None:
            queue.append(item)
            return
        self.lanes[lane] = deque([item])
        task = asyncio.get_running_loop().create_task(self._drain(lane), name=f"publish-{lane[:32]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self, event: Event) -> None:
        """Until the engine has stored ``event`` (one the master made and sent here)."""
        stored = self._stored.get(event.id)
        if stored is not None:
            await asyncio.shield(stored)

    def _done(self, item: _Item) -> None:
        if item.first and (stored := self._stored.pop(item.first, None)) is not None and not stored.done():
            stored.set_result(None)
        self.bytes -= item.weight
        if self.bytes <= MAX_FORWARD_BYTES // 2:
            self._room.set()

    async def _drain(self, lane: str) -> None:
        """Publish a lane's items: a minion's one after another (order per source), the
        master's many at once (``_drain_master``)."""
        if lane == _MASTER_LANE:
            await self._drain_master()
            return
        queue = self.lanes[lane]
        try:
            while queue:
                item = queue[0]
                if item.payload is not None and len(item.payload) + 1024 > self.engine().max_payload:
                    # one event too large for the engine: it can never be stored; dropped,
                    # counted and acknowledged, so it cannot come back for ever
                    self.stats.incr("cluster.too_large")
                    log.error(
                        "cluster: dropped events of %s too large for the engine (%d bytes)",
                        lane,
                        len(item.payload),
                    )
                    item.payload = None
                try:
                    if item.payload is not None:
                        await self.engine().publish(item.subject, item.payload, item.msg_id)
                except ClusterError as exc:
                    self._give_up(lane, queue, exc)
                    return
                queue.popleft()
                self._done(item)
                for (source, epoch), seq in item.delivery.items():
                    self.pipeline.send_ack(source, epoch, seq)
        finally:
            if not queue:
                self.lanes.pop(lane, None)

    async def _drain_master(self) -> None:
        """The master's own events and done records, up to 64 in flight; what the engine did
        not take is published again, under the same message id, until it does."""
        queue = self.lanes[_MASTER_LANE]
        backoff = 0.05
        try:
            while queue:
                items = self._next_batch(queue)
                for item in items:
                    if item.ended is not None:
                        item.payload = records.pack_done(item.ended)
                        item.msg_id = f"done:{item.ended[0][0]}:{len(item.ended)}"
                        item.ended = None
                results = await asyncio.gather(
                    *(self.engine().publish(i.subject, i.payload or b"", i.msg_id) for i in items),
                    return_exceptions=True,
                )
                failed = [i for i, r in zip(items, results, strict=True) if isinstance(r, BaseException)]
                for item, result in zip(items, results, strict=True):
                    if not isinstance(result, BaseException):
                        self._done(item)
                if failed:
                    error = next(r for r in results if isinstance(r, BaseException))
                    if not isinstance(error, ClusterError):
                        raise error
                    self.stats.incr("cluster.publish_retries", len(failed))
                    log.warning("cluster: could not publish the master's events (%s); trying again", error)
                    queue.extendleft(reversed(failed))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                else:
                    backoff = 0.05
        finally:
            if not queue:
                self.lanes.pop(_MASTER_LANE, None)

    @staticmethod
    def _next_batch(queue: deque[_Item]) -> list[_Item]:
        """Up to 64 items to publish at once; a done record only once everything queued before
        it is stored (an action's event must never be lost behind its done record)."""
        items: list[_Item] = []
        while queue and len(items) < 64:
            if queue[0].ended is not None and items:
                break
            items.append(queue.popleft())
            if items[-1].ended is not None:
                break
        return items

    def _give_up(self, lane: str, queue: deque[_Item], exc: ClusterError) -> None:
        """A minion's batch was not stored: drop what follows it (not acknowledged: the minion
        sends it all again) and take it again when it does."""
        self.stats.incr("cluster.publish_failed", len(queue))
        log.warning("cluster: could not publish events of %s (%s); it will send them again", lane, exc)
        while queue:
            item = queue.popleft()
            self._done(item)
            for source, epoch in item.delivery:
                self.pipeline.unforward(source, epoch)
        self.lanes.pop(lane, None)

    def busy(self) -> bool:
        return not self._room.is_set()

    async def wait(self) -> None:
        await self._room.wait()

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until everything queued is published."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.lanes:
                    await asyncio.sleep(0.02)


def _by_size(events: list[Event], limit: int = RECORD_BYTES) -> list[list[Event]]:
    """``events`` in runs of about ``limit`` bytes (an event larger than that alone)."""
    chunks: list[list[Event]] = [[]]
    size = 0
    for event in events:
        weight = len(event.packed_data()) + len(event.tag) + 128
        if chunks[-1] and size + weight > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += weight
    return chunks
