"""A master in cluster mode: the parts that share its fleet with the other masters through the
engine (docs/cluster.md, DESIGN.md §9).

- **Edge** (``Publisher``): minion batches and the master's own events go to the event
  stream instead of the local log; a minion is acknowledged once the engine has stored its
  batch. One source's batches are published one after another (never two in flight), so a
  source's events are in the stream in order, each batch as one record.
- **Replica** (``_apply``): every master applies the whole stream, in order, to its own
  database, through the same pipeline as a single master (log, state table, rule state,
  decisions), with the stream's arrival times as the reactor's clock: every master holds the
  same log, fleet state and rule state, and `event list`, `state`, `rules explain` answer
  alike on each. The sequence applied is written with what it applied.
- **Owner** (``Ownership``): partitions of sources are leased (CAS, TTL), assigned by
  rendezvous over the live members; only a partition's owner runs the actions its events
  fired, each claimed first as an intent in RDACT under the action's id (deduplicated by
  the engine: a second claim is refused), and each partition's fence in ``rd_state`` is
  written with CAS stamped with the sequence applied: a paused owner whose successor took
  over is refused there and drops the partition. An action that ended is recorded in the
  stream (a done record) so the next owner does not run it again.
- **Fleet**: accepted keys (``rd_keys``) and presence (``rd_presence``) are shared buckets
  every master watches; commands reach a minion through the master holding it
  (``rd.cmd.<member>``), returns find their job's master (``rd.ret``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from reactord.actions.tries import Rendered
from reactord.base.config import ClusterConfig
from reactord.base.errors import ClusterError
from reactord.base.stats import Stats
from reactord.cluster import records
from reactord.cluster.engine import Engine, EngineInfo, Following, KvBucket, Layout, connect, transient
from reactord.cluster.hooks import ReportingAuditLog, StreamClock
from reactord.cluster.ownership import Ownership
from reactord.cluster.publisher import Publisher
from reactord.cluster.subjects import (
    ACTIONS_STREAM,
    COMMANDS,
    KEYS_BUCKET,
    PRESENCE_BUCKET,
    RETURNS,
    STATE_BUCKET,
    action_subject,
    kv_key,
    kv_name,
    partition_of,
)
from reactord.keystore import KeyStore
from reactord.link import CommandLink
from reactord.nodes import Nodes
from reactord.pipeline import EventPipeline
from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.errors import DecodeError, StorageDamaged, StorageFull
from reactord.protocol.events import Event
from reactord.protocol.keys import z85_decode, z85_encode
from reactord.protocol.tags import is_valid_minion_id
from reactord.reactions import Reactor
from reactord.store.audit import AuditLog, DeadLetter
from reactord.store.clusterstate import AppliedSequence
from reactord.store.database import Database
from reactord.store.jobstore import JobRecord, JobStore
from reactord.store.minions import MinionRecord, MinionRegistry

log = logging.getLogger("reactord.cluster")

#: Records applied in one transaction at most.
APPLY_BATCH = 256
#: Jobs of other masters remembered as theirs (their returns are forwarded to them).
MAX_FOREIGN_JOBS = 100_000


class ClusterNode:
    """Cluster mode for one master (see the module docstring); made and started by the master."""

    def __init__(
        self,
        config: ClusterConfig,
        member: str,
        *,
        db: Database,
        pipeline: EventPipeline,
        reactor: Reactor,
        audit: ReportingAuditLog,
        keystore: KeyStore,
        nodes: Nodes,
        registry: MinionRegistry,
        link: CommandLink,
        on_return: Callable[[str, m.Return], bool],
        job_store: JobStore,
        stream_clock: StreamClock,
        stats: Stats,
        token: str | None = None,
        max_event_bytes: int = 1 << 20,
    ) -> None:
        self.config = config
        self.member = member
        self.pipeline = pipeline
        self.reactor = reactor
        self.audit = audit
        self.keystore = keystore
        self.nodes = nodes
        self.registry = registry
        self.link = link
        self.on_return = on_return
        self.job_store = job_store
        self._foreign: dict[str, None] = {}  # jobs other masters started (oldest first, bounded)
        self._forced: set[str] = set()  # actions to run though claimed (their claimer died)
        self._doubts: dict[str, tuple[str, float]] = {}  # action -> (event, when to look again)
        self.stream_clock = stream_clock
        self.stats = stats
        self.token = token
        self.max_event_bytes = max_event_bytes
        self.applied_seq = AppliedSequence(db, "RDEV")
        self.applied = self.applied_seq.read()
        self.engine: Engine
        self.publisher = Publisher(config.partitions, lambda: self.engine, pipeline, stats)
        self.ownership: Ownership
        self._inbox: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(maxsize=4096)
        self._following: Following | None = None
        self._last_delivery = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []  # the long-lived ones (run)
        self._background: set[asyncio.Task[Any]] = set()  # one-off writes and requests
        self._keys: KvBucket
        self._presence: KvBucket
        self._published_keys: dict[str, bytes] = {}
        self._published_presence: dict[str, tuple[Any, ...]] = {}
        self._remote_presence: dict[str, bytes] = {}
        self._subs: list[Any] = []

    # -- start and stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, check the engine, make or check its streams and buckets; ClusterError (one
        line) when any of it fails."""
        self.engine = await connect(
            self.config.servers,
            token=self.token,
            credentials=self.config.credentials,
            timeout=self.config.connect_timeout,
            name=f"reactord-{self.member}",
        )
        try:
            info = await self._prepare()
        except BaseException:
            await self.engine.close()
            raise
        self._hook()
        log.info(
            "cluster: %s joined through nats-server %s at %s (%d partitions, lease %gs)",
            self.member,
            info.version,
            info.address,
            self.config.partitions,
            self.config.lease_ttl,
        )

    async def _prepare(self) -> EngineInfo:
        """Check the engine, make or check the streams and buckets. A timeout (the engine
        electing leaders after a node restarted) is tried again for up to six connect
        timeouts (at least 30s); a refusal is not."""
        deadline = time.monotonic() + max(30.0, 6 * self.config.connect_timeout)
        while True:
            try:
                info = await self.engine.check_engine()
                if self.engine.max_payload < self.max_event_bytes:
                    log.warning(
                        "cluster: the engine takes messages of %d bytes at most, less than max_message_size"
                        " (%d): a single event larger than that will be dropped (counted:"
                        " cluster.too_large); raise max_payload in nats-server's config",
                        self.engine.max_payload,
                        self.max_event_bytes,
                    )
                layout = Layout(
                    self.config.partitions,
                    self.config.lease_ttl,
                    self.config.replicas,
                    self.config.duplicate_window,
                )
                await self.engine.ensure_streams(layout)
                self.ownership = Ownership(
                    self.member,
                    self.config.partitions,
                    self.config.lease_ttl,
                    await self.engine.leases(),
                    await self.engine.bucket(STATE_BUCKET),
                    applied=lambda: self.applied,
                    take_over=self.take_over,
                    stats=self.stats,
                )
                self._keys = await self.engine.bucket(KEYS_BUCKET)
                self._presence = await self.engine.bucket(PRESENCE_BUCKET)
                return info
            except ClusterError as exc:
                if not transient(exc) or time.monotonic() > deadline:
                    raise
                log.warning("cluster: the engine is not ready (%s); trying again", exc)
                await asyncio.sleep(1.0)

    def _hook(self) -> None:
        """From now on the master's parts go through the cluster."""
        self.pipeline.forwarder = self.publisher
        self.reactor.owns = self.owns_event
        self.reactor.event_time = True
        self.reactor.dispatcher.claim = self.claim
        self.audit.on_end = self._ended
        self.audit.on_dead = self._dead
        self.keystore.on_change = self._key_changed
        self.nodes.presence.member = self.member
        self.nodes.presence.judged_elsewhere = self._judged_elsewhere

    async def run(self) -> None:
        """The cluster's long-lived tasks, until cancelled."""
        await self._share_keys()
        self._tasks = [
            await self._keys.watch(self._on_key),
            await self._presence.watch(self._on_presence),
            await self.ownership.kv.watch(self.ownership.on_change),
            asyncio.create_task(self._apply_loop(), name="cluster-apply"),
            asyncio.create_task(self.ownership.run(), name="cluster-ownership"),
            asyncio.create_task(self._watchdog(), name="cluster-watchdog"),
            asyncio.create_task(self._presence_loop(), name="cluster-presence"),
            asyncio.create_task(self._rechecks(), name="cluster-rechecks"),
        ]
        self._subs = [
            await self.engine.serve(COMMANDS.format(member=self.member), self._on_command),
            await self.engine.serve(RETURNS, self._on_forwarded_return),
        ]
        await self._follow()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()

    async def close(self) -> None:
        await self.publisher.flush(2.0)
        if self._following is not None:
            await self._following.stop()
        for task in (*self._tasks, *self._background):
            task.cancel()
        with contextlib.suppress(ClusterError):
            await self.ownership.release_all()
        await self.engine.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """A one-off task (a write, a request), kept until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the replica: apply the stream ------------------------------------------------------------

    async def _follow(self) -> None:
        if self._following is not None:
            await self._following.stop()
        self._following = await self.engine.follow(self.applied + 1, self._on_record)
        self._last_delivery = time.monotonic()

    async def _on_record(self, seq: int, payload: bytes) -> None:
        self._last_delivery = time.monotonic()
        await self._inbox.put((seq, payload))

    async def _apply_loop(self) -> None:
        while True:
            if self.reactor.dispatcher.saturated:
                await self.reactor.wait_room()  # the firings this master runs are at their bound
            batch = [await self._inbox.get()]
            while not self._inbox.empty() and len(batch) < APPLY_BATCH:
                batch.append(self._inbox.get_nowait())
            await self._apply(batch)
            await asyncio.sleep(0)

    async def _apply(self, batch: list[tuple[int, bytes]]) -> None:
        """Apply records in stream order: each run of records of one kind in one transaction
        with the sequence reached (see ``_apply_run``)."""
        runs: list[tuple[str, list[tuple[int, Any]]]] = []
        for seq, payload in batch:
            if seq <= self.applied:
                continue  # a consumer recreated from an older sequence
            try:
                record: Any = records.unpack(payload)
            except DecodeError as exc:
                self.stats.incr("cluster.bad_records")
                log.error("cluster: skipped record %d of the event stream: %s", seq, exc)
                record = None
            kind = (
                "rows"
                if isinstance(record, records.RuleRows)
                else "import"
                if isinstance(record, records.Events) and record.imported
                else "live"
            )
            if runs and runs[-1][0] == kind and kind != "rows":
                runs[-1][1].append((seq, record))
            else:
                runs.append((kind, [(seq, record)]))
        for kind, run in runs:
            await self._apply_run(kind, run)
        if batch:
            self.stats.incr("cluster.records_applied", len(batch))

    async def _apply_run(self, kind: str, run: list[tuple[int, Any]]) -> None:
        """One transaction: the events (decided, unless imported), the rule state rows of an
        import, and the sequence reached; on a full disk the same again after a pause."""
        events: list[Event] = []
        delivery: dict[tuple[str, str], int] = {}
        ended: list[records.Done] = []
        letters: list[DeadLetter] = []
        rows: list[tuple[str, str, str, Any]] = []
        for _, record in run:
            if isinstance(record, records.Done):
                ended.append(record)
            elif isinstance(record, DeadLetter):
                letters.append(record)
            elif isinstance(record, records.RuleRows):
                rows += record.rows
            elif isinstance(record, records.Events):
                events += self.pipeline.fresh(record.events, delivery) if record.tracked else record.events
        last = run[-1][0]
        extra = self.applied_seq.writes(last)
        if rows:
            extra = self.reactor.rule_store.writes(rows) + extra
        while True:
            self.stream_clock.at = max((e.received for e in events), default=None)
            try:
                self.pipeline.apply(events, delivery, extra, decide=kind == "live")
                break
            except StorageFull:
                await asyncio.sleep(1.0)  # the pipeline reports it; the same records again
            except StorageDamaged:
                raise
            except Exception as exc:  # a value the database refuses: write the others
                log.error("cluster: records up to %d could not be applied together (%r)", last, exc)
                self._apply_each(events, delivery, last, decide=kind == "live")
                break
            finally:
                self.stream_clock.at = None
        self.applied = last
        if rows:
            self.reactor.engine.state.load_rows(rows)
        self._jobs_seen(events)
        for done in ended:
            for action_id, status, fields in done.ended:
                AuditLog.update_action(self.audit, action_id, **fields, status=status)
        for letter in letters:
            self._dead_seen(letter)

    def _dead_seen(self, letter: DeadLetter) -> None:
        """A dead letter from the stream (ours too): the same on every master."""
        try:
            if self.audit.dead_letter(letter.id) is None:
                AuditLog.add_dead(self.audit, letter)
            else:
                AuditLog.update_dead(
                    self.audit,
                    letter.id,
                    status=letter.status,
                    error=letter.error,
                    attempts=letter.attempts,
                    now=letter.updated,
                )
        except StorageFull:
            log.warning("cluster: the disk is full: dead letter %s not recorded", letter.id)

    def _jobs_seen(self, events: list[Event]) -> None:
        """Jobs another master started, and their returns, as they pass in the stream: every
        master's ``jobs`` shows them (the job's own master stored them already)."""
        for event in events:
            if event.source != "master" or not event.tag.startswith("reactor/job/"):
                continue
            parts = event.tag.split("/")
            try:
                if len(parts) == 4 and parts[3] == "new" and self.job_store.get(parts[2]) is None:
                    self.job_store.add(_job_from(event))
                    self._foreign[parts[2]] = None
                    while len(self._foreign) > MAX_FOREIGN_JOBS:
                        del self._foreign[next(iter(self._foreign))]
                elif len(parts) == 5 and parts[3] == "ret" and self.job_store.get(parts[2]) is not None:
                    self.job_store.add_return(_return_from(event, parts[4]), event.received)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("cluster: could not record job event %s: %r", event.tag, exc)
            except StorageFull:
                log.warning("cluster: the disk is full: job event %s not recorded", event.tag)

    def _apply_each(
        self, events: list[Event], delivery: dict[tuple[str, str], int], last: int, *, decide: bool
    ) -> None:
        for event in events:
            self.stream_clock.at = event.received
            key = (event.source, event.epoch)
            one = {key: event.seq} if key in delivery else {}
            try:
                self.pipeline.apply([event], one, [], decide=decide)
            except (StorageFull, StorageDamaged):
                raise
            except Exception as exc:
                self.stats.incr("drop.unstorable")
                log.error(
                    "cluster: dropped event %s (%s): the database refused it: %r", event.id, event.tag, exc
                )
                if one:
                    self.pipeline.apply([], one, [])
        self.pipeline.apply([], {}, self.applied_seq.writes(last))

    async def _watchdog(self) -> None:
        """A consumer with messages pending that delivers nothing for ``watchdog`` seconds is
        recreated (nats-server #5576, #6290: stalled consumers)."""
        limit = self.config.watchdog
        while True:
            await asyncio.sleep(min(5.0, limit / 3))
            if time.monotonic() - self._last_delivery < limit or not self._inbox.empty():
                continue
            try:
                last = await self.engine.last_seq()
                if last > self.applied:
                    self.stats.incr("cluster.consumer_recreated")
                    log.warning(
                        "cluster: the event consumer delivered nothing for %gs with %d records pending;"
                        " recreating it",
                        limit,
                        last - self.applied,
                    )
                    await self._follow()
                else:
                    self._last_delivery = time.monotonic()
            except ClusterError as exc:
                log.warning("cluster: watchdog could not check the consumer: %s", exc)

    async def lag(self) -> int:
        return max(0, await self.engine.last_seq() - self.applied)

    # -- the owner: actions --------------------------------------------------------------------

    def partition(self, source: str) -> int:
        return partition_of(source, self.config.partitions)

    def owns_event(self, event: Event) -> bool:
        """Whether this master queues the actions of ``event`` (each is claimed before it runs)."""
        return self.ownership.holds(self.partition(event.source))

    def take_over(self, p: int) -> None:
        """Partition ``p`` is ours now: what its previous owner left unfinished runs here, once
        this master has applied the stream as far as it reached when it took ``p`` (the done
        records of what the previous owner finished are in it)."""
        self._spawn(self._resume_partition(p))

    async def _resume_partition(self, p: int) -> None:
        try:
            target = await self.engine.last_seq()
        except ClusterError:
            target = self.applied
        deadline = time.monotonic() + 4 * self.config.lease_ttl
        while self.applied < target and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # the apply loop catching up
        while not self.ownership.owns(p):  # held but not for sure (a round came late): wait
            if not self.ownership.holds(p):
                return  # dropped: its next owner resumes what is pending
            await asyncio.sleep(0.1)
        resumed = self.reactor.resume(keep=lambda event: self.partition(event.source) == p)
        log.info("cluster: took partition %d (%d unfinished firings resumed)", p, resumed)

    async def claim(self, action: Rendered) -> bool:
        """Before an action runs: this master must own its partition, and its intent must be new
        to the engine. A duplicate means another master claimed it first: a live owner leaves
        it; a successor resuming it waits for that master's done record and runs it only when
        none came (that master died while it ran: at least once)."""
        p = self.partition(action.event.source)
        replay = "/replay/" in action.key  # an operator's replay runs where it was asked for
        if not replay and not self.ownership.owns(p):
            self._refused(action, "this master no longer owns its partition")
            self.ownership.refused_while_held(p)
            return False
        intent = codec.pack(
            {"member": self.member, "event": action.event.id, "rule": action.rule, "key": action.key}
        )
        backoff = 0.1
        give_up = time.monotonic() + action.timeout  # a replay's claim (a partition's: while owned)
        while True:  # the engine may be electing a leader: try until it answers or p is lost
            try:
                published = await self.engine.publish(
                    action_subject(p), intent, f"intent:{action.action_id}", stream=ACTIONS_STREAM
                )
                break
            except ClusterError as exc:
                self.stats.incr("cluster.claim_retries")
                log.warning("cluster: could not claim %s (%s); trying again", action.action_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, 2.0)
            if (replay and time.monotonic() > give_up) or (not replay and not self.ownership.owns(p)):
                self._refused(action, "the engine did not answer (or the partition was lost meanwhile)")
                return False
        forced = action.action_id in self._forced
        self._forced.discard(action.action_id)
        if published.duplicate and not forced:
            self._refused(action, "another master claimed it first")
            # that master runs it and says so (a done record); if none comes, it did not
            due = time.monotonic() + 2 * self.config.lease_ttl + action.timeout
            self._doubts[action.action_id] = (action.event.id, due)
            return False
        if not replay and not self.ownership.owns(p):  # lost while the claim was on its way
            self._refused(action, "this master lost its partition meanwhile")
            self.ownership.refused_while_held(p)
            return False
        return True

    def _refused(self, action: Rendered, why: str) -> None:
        self.stats.incr("cluster.intents_refused")
        log.info(
            "cluster: did not run %s (%s of %s): %s", action.action_id, action.rule, action.event.id, why
        )

    async def _rechecks(self) -> None:
        """Once a second: the actions another master had claimed whose time is up. One that
        has still not ended was claimed by a master that died while it ran (or lost its
        partition before it ran it): it runs here, with the actions after it in its firing,
        if this master owns the partition (else its owner's own check does it)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            due = [(a, e) for a, (e, at) in self._doubts.items() if at <= now]
            if not due:
                continue
            for action_id, _ in due:
                del self._doubts[action_id]
            open_ids = {row["id"] for row in self.audit.unfinished()}
            events: set[str] = set()
            for action_id, event_id in due:
                event = self.reactor.event_log.get(event_id) if action_id in open_ids else None
                if event is None or not self.ownership.owns(self.partition(event.source)):
                    continue
                self._forced.add(action_id)
                events.add(event_id)
            if events:
                log.warning(
                    "cluster: %d actions were claimed by a master that never ended them: running them here",
                    len(events),
                )
                self._resume_events(events)

    def _resume_events(self, events: set[str]) -> None:
        self.reactor.resume(keep=lambda event: event.id in events)

    def _dead(self, letter: DeadLetter) -> None:
        event = self.reactor.event_log.get(letter.event_id)
        self.publisher.publish_dead(event.source if event is not None else "", letter)

    def _ended(self, action_id: str, status: str, fields: dict[str, Any]) -> None:
        event_id = self.audit.action_event(action_id)
        event = self.reactor.event_log.get(event_id) if event_id else None
        if event is not None:
            self.publisher.publish_done(event.source, action_id, status, fields)

    # -- keys --------------------------------------------------------------------------------------

    def _key_value(self, minion_id: str) -> bytes:
        return key_value(self.keystore.states(minion_id))

    def _key_changed(self, minion_id: str) -> None:
        value = self._key_value(minion_id)
        if self._published_keys.get(minion_id) == value:
            return
        self._published_keys[minion_id] = value
        self._spawn(self._put_key(minion_id, value))

    async def _put_key(self, minion_id: str, value: bytes) -> None:
        log.debug("cluster: sharing the keys of %s", minion_id)
        try:
            if value == codec.pack({}):
                await self._keys.remove(kv_key(minion_id))
            else:
                await self._keys.put(kv_key(minion_id), value)
        except ClusterError as exc:
            self._published_keys.pop(minion_id, None)
            log.error("cluster: could not share the keys of %s: %s", minion_id, exc)

    async def _share_keys(self) -> None:
        """At start: keys this master has that the cluster has not (``cluster import``)."""
        shared = await self._keys.items()
        for minion_id in self.keystore.listing().get("accepted", []):
            if kv_key(minion_id) not in shared:
                await self._put_key(minion_id, self._key_value(minion_id))

    async def _on_key(self, key: str, value: bytes | None) -> None:
        minion_id = kv_name(key)
        log.debug("cluster: the keys of %s changed in the engine", minion_id)
        if not is_valid_minion_id(minion_id):
            return
        states: dict[str, list[bytes]] = {}
        if value is not None:
            try:
                raw = codec.unpack(value, max_size=1 << 20)
                states = {str(s): [z85_decode(k) for k in keys] for s, keys in raw.items()}
            except (DecodeError, ValueError, AttributeError, TypeError) as exc:
                log.error("cluster: ignored the keys of %s from the engine: %r", minion_id, exc)
                return
        if self._key_value(minion_id) == (value or codec.pack({})):
            return
        self._published_keys[minion_id] = value or codec.pack({})
        was_accepted = self.keystore.accepted_key(minion_id) is not None
        gone = self.keystore.replace(minion_id, states)
        if gone:
            self.nodes.removed_elsewhere(minion_id, [e.key for e in gone])
        if self.keystore.accepted_key(minion_id) is not None and not was_accepted:
            log.info("cluster: the key of %s was accepted on another master", minion_id)
            self.nodes.accepted_elsewhere(minion_id)

    # -- presence ----------------------------------------------------------------------------------

    def _presence_value(self, record: MinionRecord) -> tuple[Any, ...]:
        return (record.presence, record.version, tuple(record.functions), codec.pack(record.grains))

    def _judged_elsewhere(self, record: MinionRecord) -> bool:
        """Whose word a minion's presence is: the master holding it while that master lives;
        when it is gone, the owner of the minion's partition (one master, not all)."""
        if not record.master:
            return True  # not heard from since this master started; the engine says who holds it
        if record.master == self.member:
            return False
        if record.master in self.ownership.members:
            return True
        return not self.ownership.holds(self.partition(record.id))

    def _mine_to_share(self, record: MinionRecord) -> bool:
        return record.master == self.member or (bool(record.master) and not self._judged_elsewhere(record))

    async def _presence_loop(self) -> None:
        """Once a second: the minions this master holds, as the cluster should see them."""
        refreshed = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            refresh = now - refreshed > 10
            for record in self.registry.all():
                if not self._mine_to_share(record):
                    continue
                value = self._presence_value(record)
                if not refresh and self._published_presence.get(record.id) == value:
                    continue
                if record.presence != "up" and not self.link.connected(record.id):
                    holder = self._remote_holder(record.id)
                    if holder not in ("", self.member, record.master) and holder in self.ownership.members:
                        continue  # another master holds it now: not ours to judge
                payload = codec.pack(
                    {
                        "master": record.master,
                        "presence": record.presence,
                        "last_seen": record.last_seen,
                        "first_seen": record.first_seen,
                        "version": record.version,
                        "functions": record.functions,
                        "grains": record.grains,
                    }
                )
                try:
                    await self._presence.put(kv_key(record.id), payload)
                except ClusterError as exc:
                    log.warning("cluster: could not share the presence of %s: %s", record.id, exc)
                    continue
                self._published_presence[record.id] = value
            if refresh:
                refreshed = now

    def _remote_holder(self, minion_id: str) -> str:
        raw = self._remote_presence.get(minion_id)
        if raw is None:
            return ""
        with contextlib.suppress(DecodeError, AttributeError):
            return str(codec.unpack(raw, max_size=1 << 20).get("master", ""))
        return ""

    async def _on_presence(self, key: str, value: bytes | None) -> None:
        minion_id = kv_name(key)
        if not is_valid_minion_id(minion_id):
            return
        if value is None:
            self._remote_presence.pop(minion_id, None)
            return
        self._remote_presence[minion_id] = value
        try:
            raw = codec.unpack(value, max_size=1 << 20)
            master = str(raw["master"])
            if master == self.member:
                return
            record = MinionRecord(
                id=minion_id,
                grains=dict(raw.get("grains") or {}),
                version=str(raw.get("version", "")),
                functions=[str(f) for f in raw.get("functions") or []],
                presence=str(raw.get("presence", "down")),
                last_seen=_finite(raw.get("last_seen")),
                first_seen=_finite(raw.get("first_seen")),
                master=master,
            )
        except (DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("cluster: ignored the presence of %s from the engine: %r", minion_id, exc)
            return
        if self.keystore.accepted_key(minion_id) is None:
            return
        if self.link.connected(minion_id) and record.presence != "up":
            return  # it is here now; the other master's word is older than ours
        self.registry.mirror(record)
        self._published_presence.pop(minion_id, None)

    # -- commands and returns across masters -------------------------------------------------------

    def send(self, minion_id: str, message: m.Message) -> bool:
        """A message for a minion: through this master's link when it holds the minion, else
        through the master that does (as the shared presence says)."""
        if self.link.connected(minion_id):
            return self.link.send(minion_id, message)
        record = self.registry.get(minion_id)
        if record is None or not record.master or record.master == self.member:
            return False
        data = codec.pack([minion_id, message.to_wire()])
        self._spawn(self._route(record.master, data))
        return True

    async def _route(self, master: str, data: bytes) -> None:
        try:
            await self.engine.request(COMMANDS.format(member=master), data, timeout=2.0)
        except ClusterError as exc:
            log.warning("cluster: could not route a command through %s: %s", master, exc)

    def _routed(self, data: bytes, subject: str) -> tuple[str, m.Message] | None:
        """A message another master routed here: [minion id, message on the wire], checked
        like anything from the network (a bad one is counted and logged, never raised)."""
        try:
            item = codec.unpack(data, max_size=8 << 20)
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bytes):
                raise DecodeError("expected [minion id, message]")
            minion_id = item[0]
            if not isinstance(minion_id, str) or not is_valid_minion_id(minion_id):
                raise DecodeError("not a minion id")
            return minion_id, m.decode(item[1])
        except DecodeError as exc:
            self.stats.incr("cluster.bad_messages")
            log.warning("cluster: dropped a malformed message on %s: %s", subject, exc)
            return None

    async def _on_command(self, data: bytes) -> bytes | None:
        routed = self._routed(data, "rd.cmd")
        if routed is None:
            return None
        return b"sent" if self.link.send(*routed) else b"not here"

    def foreign(self, jid: str) -> bool:
        """Whether another master started this job (or none here knows it yet)."""
        return jid in self._foreign or self.job_store.get(jid) is None

    def forward_return(self, minion_id: str, ret: m.Return) -> None:
        """A return for a job this master did not start: to the master that did; the minion is
        acknowledged once that master took it. When that master does not answer (it is gone)
        and the job is known here, it is stored here: the return is not lost."""
        data = codec.pack([minion_id, ret.to_wire()])

        async def forward() -> None:
            try:
                reply = await self.engine.request(RETURNS, data, timeout=5.0)
            except ClusterError as exc:
                log.warning("cluster: could not forward a return of %s: %s", minion_id, exc)
                return
            if reply == b"ok" or (
                reply is None and self.job_store.get(ret.jid) and self.on_return(minion_id, ret)
            ):
                self.link.send(minion_id, m.ReturnAck(jid=ret.jid))

        self._spawn(forward())

    async def _on_forwarded_return(self, data: bytes) -> bytes | None:
        routed = self._routed(data, RETURNS)
        if routed is None:
            return None
        minion_id, message = routed
        if not isinstance(message, m.Return) or self.foreign(message.jid):
            return None
        return b"ok" if self.on_return(minion_id, message) else None

    # -- what `cluster status` shows ---------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        members = sorted(set(self.ownership.members) | {self.member})
        owners: dict[str, list[int]] = {name: [] for name in members}
        for p, holder in sorted(self.ownership.holders.items()):
            owners.setdefault(holder, []).append(p)
        out: dict[str, Any] = {
            "member": self.member,
            "members": members,
            "partitions": self.config.partitions,
            "owned": sorted(self.ownership.owned),
            "owners": owners,
            "unowned": [p for p in range(self.config.partitions) if p not in self.ownership.holders],
            "applied": self.applied,
            "engine": {"connected": self.engine.connected, **vars_of(self.engine.server)},
        }
        try:
            out["lag"] = await self.lag()
            out["streams"] = [await self.engine.health("RDEV"), await self.engine.health(ACTIONS_STREAM)]
        except ClusterError as exc:
            out["error"] = str(exc)
        return out


def key_value(states: dict[str, list[bytes]]) -> bytes:
    """A minion's keys by state, as ``rd_keys`` holds them."""
    return codec.pack({state: [z85_encode(k) for k in keys] for state, keys in sorted(states.items())})


def _job_from(event: Event) -> JobRecord:
    data = event.data
    return JobRecord(
        jid=str(data["jid"]),
        fun=str(data["fun"]),
        args=list(data.get("args") or []),
        kwargs=dict(data.get("kwargs") or {}),
        target=str(data.get("target", "")),
        target_type=str(data.get("tgt_type", "glob")),
        minions=[str(x) for x in data["minions"]],
        created=event.time,
        timeout=_finite(data.get("timeout")),
        origin=str(data.get("origin", "")),
        causation=event.causation,
        depth=event.depth,
        action=None,
        batch=data.get("batch") if isinstance(data.get("batch"), dict) else None,
    )


def _return_from(event: Event, minion_id: str) -> m.Return:
    data = event.data
    return m.Return(
        jid=str(data["jid"]),
        id=minion_id,
        success=bool(data["success"]),
        retcode=int(data.get("retcode", 0)),
        ret=data.get("return"),
        error=data.get("error"),
        started=_finite(data.get("started")),
        finished=_finite(data.get("finished")),
    )


def vars_of(info: Any) -> dict[str, Any]:
    return {"address": info.address, "version": info.version}


def _finite(value: Any) -> float:
    number = float(value or 0.0)
    return number if math.isfinite(number) else 0.0


__all__ = ["ClusterNode", "key_value"]
