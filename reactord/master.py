"""The master daemon: one owner object that opens everything and runs the long-lived tasks."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from reactord import __version__
from reactord.actions.context import ActionServices
from reactord.actions.gate import FleetGate
from reactord.base.config import MasterConfig, read_secret
from reactord.base.stats import Stats
from reactord.base.targeting import resolve
from reactord.budget import Budgets
from reactord.bus import Bus
from reactord.control import ControlServer
from reactord.control.deadletters_ops import DeadLetterParts
from reactord.control.events_ops import EventParts
from reactord.control.fleet_ops import FleetParts
from reactord.control.jobs_ops import JobParts
from reactord.control.keys_ops import KeyParts
from reactord.control.registry import Parts, handlers
from reactord.control.rules_ops import RuleParts
from reactord.control.status_ops import StatusParts
from reactord.control.tokens_ops import TokenParts
from reactord.fleet import Fleet
from reactord.ingest import Ingest
from reactord.jobrunner import JobRunner
from reactord.keyservice import KeyService
from reactord.keystore import KeyStore
from reactord.link import CommandLink
from reactord.nodes import Nodes
from reactord.pipeline import EventPipeline
from reactord.presence import PresenceTracker
from reactord.protocol import messages as m
from reactord.protocol.errors import StorageDamaged, StorageFull
from reactord.protocol.events import Event
from reactord.protocol.keys import CurveKeys, Signer, ensure_private_dir
from reactord.protocol.metricsserver import Snapshot, registry_of
from reactord.reactions import Reactor
from reactord.store.audit import AuditLog
from reactord.store.database import Checkpointer, Database, Writes
from reactord.store.deliveries import Deliveries
from reactord.store.eventlog import EventLog
from reactord.store.jobstore import JobStore
from reactord.store.minions import MinionRegistry
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable
from reactord.store.tokens import TokenStore
from reactord.webhooks import Busy, Delivered, Endpoint, Item, WebhookIntake, deliver
from reactord.zap import ZapHandler

log = logging.getLogger("reactord.master")


class Master:
    """Owns the sockets, stores and services of one master; ``run`` is its main loop."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        ctx: zmq.asyncio.Context | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Build every part, in the order each needs the others (the composition root).

        Longer than the house's 60 lines on purpose: it reads as the list of the master's
        parts and what each is given, top to bottom; split, the wiring would be scattered.
        """
        self.config = config
        self.clock = clock
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.asyncio.Context()
        self.stats = Stats()
        self.started = clock()
        ensure_private_dir(config.pki_dir)
        ensure_private_dir(config.state_dir)
        self.keys = CurveKeys.load_or_create(config.pki_dir, "master")
        self.signer = Signer.load_or_create(config.pki_dir, "master_sign")
        self.keystore = KeyStore(
            config.pki_dir, auto_accept=config.auto_accept, max_pending=config.max_pending
        )
        self.db = Database(config.database, MIGRATIONS)
        self.checkpointer: Checkpointer | None = None
        self.registry = MinionRegistry(self.db)
        self.job_store = JobStore(self.db)
        self.event_log = EventLog(self.db)
        self.deliveries = Deliveries(self.db, config.webhooks.dedupe_window)
        self.bus = Bus(self.ctx, config.bus_path, config.max_message_size)
        self.state_table = StateTable(self.db, cache_bytes=config.state.cache_bytes)
        limits = config.limits
        self.budgets = Budgets(
            limits.events_per_second, limits.bytes_per_second, limits.burst_seconds, self.stats
        )
        self.presence = PresenceTracker(self.registry, config.presence, self.emit, self.started)
        self.zap = ZapHandler(self.ctx, self.keystore, self.stats)
        self.link = CommandLink(  # its messages go to on_message: to the nodes and the jobs
            self.ctx,
            self.keys,
            self.keystore,
            self.stats,
            self,
            max_message_size=config.max_message_size,
            queue_bytes=limits.receive_queue_bytes,
        )
        self.nodes = Nodes(
            config, self.keystore, self.registry, self.presence, self.signer, self.emit, self.link, clock
        )
        self.key_service = KeyService(self.ctx, self.keys) if config.key_port else None
        self.jobs = JobRunner(
            self.job_store,
            self.link,
            self.signer,
            self.emit,
            command_ttl=config.command_ttl,
            stats=self.stats,
            clock=clock,
        )
        self.fleet = Fleet(self.state_table, self.event_log, self.registry, config.state.ttl, clock)
        self.pipeline: EventPipeline  # made after the reactor, its decider; fire actions emit on it
        audit, reactor_clock = self._audit_and_clock()
        self.reactor = Reactor(
            config,
            event_log=self.event_log,
            rule_store=SqliteRuleStore(self.db),
            audit=audit,
            latest=self.state_table.previous,
            minions=self.registry.records,
            fleet_latest=self.state_table.current,
            services=ActionServices(
                max_depth=config.reactor.max_depth,
                emit=lambda tag, data, **how: self.pipeline.emit(tag, data, **how),
                made_by=self.event_log.by_action,
                jobs=self.jobs,
                resolve_target=self.resolve_target,
                check_gate=FleetGate(self.fleet, self.resolve_target),
                settled=self._settled if config.cluster.enabled else None,
            ),
            stats=self.stats,
            clock=reactor_clock,
        )
        self.reactor.load()
        self.pipeline = EventPipeline(
            self.event_log,
            self.state_table,
            self.bus,
            self.stats,
            send_ack=self._send_ack,
            decider=self.reactor,
            cause_of=self._cause_of,
            clock=clock,
        )
        self.ingest = Ingest(
            self.ctx,
            self.keys,
            self.keystore,
            self.pipeline,
            self.stats,
            self.budgets,
            max_message_size=config.max_message_size,
            queue_bytes=limits.receive_queue_bytes,
        )
        if self.state_table.empty() and self.event_log.count():
            log.warning(
                "the state table is empty: rebuilt %d rows from the event log", self.state_table.rebuild()
            )
        self.cluster = self._cluster_node(audit, reactor_clock) if config.cluster.enabled else None
        control = self._control_parts()
        self.ops = handlers(control)
        self.control = ControlServer(config.control_path, self.ops, daemon="master")
        serves_metrics = bool(config.metrics.address or config.http.address)
        self.metrics = self._metrics_snapshot(control.status) if serves_metrics else None
        self.http: Any = None  # reactord.http.server.HttpServer, once started
        self.stop_event = asyncio.Event()

    # -- cluster mode (docs/cluster.md): only then is reactord.cluster (and nats) imported ---------

    def _audit_and_clock(self) -> tuple[AuditLog, Callable[[], float]]:
        """The outbox and the reactor's clock: in cluster mode, an outbox that tells the cluster
        when an action ended, and the stream's clock while its records are applied."""
        if not self.config.cluster.enabled:
            return AuditLog(self.db), self.clock
        from reactord.cluster.hooks import ReportingAuditLog, StreamClock

        return ReportingAuditLog(self.db), StreamClock(self.clock)

    async def _settled(self, event: Event) -> None:
        """Cluster mode: until the engine has stored an event this master made."""
        if self.cluster is not None:
            await self.cluster.publisher.settled(event)

    def _cluster_node(self, audit: AuditLog, reactor_clock: Callable[[], float]) -> Any:
        from reactord.cluster.hooks import ReportingAuditLog, StreamClock
        from reactord.cluster.node import ClusterNode

        assert isinstance(audit, ReportingAuditLog) and isinstance(reactor_clock, StreamClock)
        settings = self.config.cluster
        token = (
            read_secret(settings.token, settings.token_file, "token")
            if settings.token or settings.token_file
            else None
        )
        node = ClusterNode(
            settings,
            self.config.member,
            db=self.db,
            pipeline=self.pipeline,
            reactor=self.reactor,
            audit=audit,
            keystore=self.keystore,
            nodes=self.nodes,
            registry=self.registry,
            link=self.link,
            on_return=self.jobs.on_return,
            job_store=self.job_store,
            token=token,
            stream_clock=reactor_clock,
            stats=self.stats,
            max_event_bytes=self.config.max_message_size,
        )
        self.jobs.link = node
        return node

    # -- what the control socket and the metrics endpoint reach ------------------------------------

    def _control_parts(self) -> Parts:
        """The parts of each area of control operations, built once: each reads live."""
        reactor = self.reactor
        return Parts(
            status=StatusParts(
                clock=self.clock,
                started=self.started,
                master_finger=self.keys.finger,
                stats=self.stats,
                minions=self.registry.all,
                key_listing=self.keystore.listing,
                database_bytes=self.db.size,
                events_logged=self.event_log.count,
                rules_loaded=lambda: len(reactor.engine.rules.rules),
                dead_letters=reactor.audit.count_dead,
                actions=reactor.dispatcher,
                storage=self.pipeline,
                budget_refused=self.budgets.refused,
                cluster=self.cluster.status if self.cluster is not None else None,
            ),
            keys=KeyParts(keys=self.keystore, decisions=self.nodes, master_finger=self.keys.finger),
            fleet=FleetParts(
                fleet=self.fleet,
                minions=self.registry.all,
                events=self.event_log,
                resolve_target=self.resolve_target,
                clock=self.clock,
            ),
            jobs=JobParts(
                runner=self.jobs,
                history=self.job_store,
                resolve_target=self.resolve_target,
                default_timeout=self.config.job_timeout,
            ),
            events=EventParts(
                events=self.event_log,
                emitter=self.pipeline,
                jobs=self.job_store,
                audit=reactor.audit,
                replay=reactor.replay,
                bus=self.bus,
                bus_path=self.config.bus_path,
            ),
            rules=RuleParts(catalog=reactor.engine, service=reactor, events=self.event_log, clock=self.clock),
            dead_letters=DeadLetterParts(
                audit=reactor.audit, retrier=reactor.dispatcher, events=self.event_log, clock=self.clock
            ),
            tokens=TokenParts(tokens=TokenStore(self.db), clock=self.clock),
        )

    def _metrics_snapshot(self, readings: StatusParts) -> Snapshot:
        """What /metrics serves. ``prometheus_client`` is imported here, so a master that
        serves no metrics never imports it."""
        from reactord.metrics import MasterCollector

        collector = MasterCollector(readings, self.nodes.outbox_depth, self.job_store.count)
        return Snapshot(collector.collect)

    # -- what the command link hands us --------------------------------------------------------

    def on_hello(self, key: bytes, hello: m.Hello) -> m.Welcome:
        return self.nodes.on_hello(key, hello)

    def on_message(self, minion_id: str, message: m.Message) -> m.Message | None:
        if isinstance(message, m.Heartbeat):
            return self.nodes.on_heartbeat(minion_id, message)
        if isinstance(message, m.Return):
            if self.cluster is not None and self.cluster.foreign(message.jid):
                self.cluster.forward_return(minion_id, message)  # acknowledged once its master took it
                return None
            return m.ReturnAck(jid=message.jid) if self.jobs.on_return(minion_id, message) else None
        self.stats.incr("drop.unexpected")
        return None

    def emit(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        causation: str | None = None,
        depth: int = 0,
        writes: Callable[[list[Event]], Writes] | None = None,
    ) -> Event:
        """A master-internal event (key, presence, job): logged, republished, matched; on a full
        disk it waits in memory (bounded) and is written when space returns. With ``writes``
        (a job's row, a return's), those rows go in its transaction, and a full disk raises
        ``StorageFull`` instead: the event exists only with them."""
        if writes is not None:
            return self.pipeline.emit_many([(tag, data)], causation=causation, depth=depth, writes=writes)[0]
        return self.pipeline.emit(tag, data, causation=causation, depth=depth, hold=True)

    def resolve_target(self, target: str, target_type: str) -> list[str]:
        """The accepted, registered minions a target names."""
        accepted = [m for m in self.keystore.accepted_ids() if self.registry.get(m) is not None]
        grains = {r.id: r.grains for r in self.registry.all()}
        return resolve(target, target_type, accepted, grains, self.config.nodegroups)

    def _cause_of(self, source: str, causation: str) -> tuple[str | None, int]:
        """A minion event's cause as the master trusts it: a job that was sent to that minion.

        Returns (causation, depth): the job's jid and depth, or (None, 0) for anything else,
        so a minion can neither attach its events to others' chains nor pick its depth.
        """
        job = self.job_store.get(causation)
        if job is not None and source in job.minions:
            return causation, job.depth
        return None, 0

    def _send_ack(self, minion_id: str, epoch: str, seq: int) -> None:
        self.link.send(minion_id, m.Ack(epoch=epoch, seq=seq))

    # -- life cycle ------------------------------------------------------------------------------

    def bind(self) -> None:
        iface = self.config.interface
        self.link.bind(f"tcp://{iface}:{self.config.command_port}")
        self.ingest.bind(f"tcp://{iface}:{self.config.event_port}")
        self.bus.bind()
        if self.key_service is not None:
            self.key_service.bind(f"tcp://{iface}:{self.config.key_port}")

    async def _start_http(self) -> None:
        """The HTTP server (reactord.http), when master.yaml gives it an address."""
        config = self.config
        if not (config.http.address or config.webhooks.address or config.metrics.address):
            return
        from reactord.http.app import http_server

        intake = self._webhook_intake() if config.webhooks.endpoints else None
        if self.metrics is not None:
            self.metrics.refresh()
        server = http_server(
            config,
            ops=self.ops,
            tokens=TokenStore(self.db),
            stats=self.stats,
            clock=self.clock,
            bus=self.bus,
            intake=intake,
            metrics_registry=registry_of(self.metrics) if self.metrics is not None else None,
        )
        if server is not None:
            self.http = server
            await server.start()

    def _webhook_intake(self) -> WebhookIntake:
        hooks = self.config.webhooks
        endpoints = {}
        for name, spec in hooks.endpoints.items():
            secret = (
                read_secret(spec.secret, spec.secret_file, "secret")
                if spec.secret or spec.secret_file
                else None
            )
            token = (
                read_secret(spec.token, spec.token_file, "token") if spec.token or spec.token_file else None
            )
            endpoints[name] = Endpoint(name, spec.kind, secret.encode() if secret else None, token)

        def emit(endpoint: str, items: list[Item]) -> Delivered:
            if self.reactor.dispatcher.saturated or self.pipeline.storage_error is not None:
                raise Busy("the master is catching up (its action queue is full or its disk is)")
            return deliver(endpoint, items, self.deliveries, self.pipeline.emit_many, self.clock())

        return WebhookIntake(
            endpoints,
            hooks.max_body,
            self.stats,
            emit,
            budgets=self.budgets,
            max_events=hooks.max_events,
            max_connections=hooks.max_connections,
        )

    async def run(self) -> None:
        """Serve until ``stop_event`` is set; then close everything in reverse order."""
        try:
            if self.cluster is not None:
                await self.cluster.start()  # ClusterError (one line) before anything is bound
            self.checkpointer = self.db.checkpoint_in_background()
            self.bind()
            await self._start_http()
            await self.control.start()
        except BaseException:
            await self._close_http()
            self.close()  # what was opened before the failure (sockets, the bus file)
            raise
        log.info(
            "master %s up: events on %s:%d, commands on :%d, key %s, control %s",
            __version__,
            self.config.interface,
            self.config.event_port,
            self.config.command_port,
            self.keys.finger,
            self.config.control_path,
        )
        if self.cluster is None:
            self.reactor.resume()  # in a cluster, each partition's owner resumes its own
        try:
            async with asyncio.TaskGroup() as tasks:
                started: dict[str, Any] = {"version": __version__}
                if self.cluster is not None:
                    started["member"] = self.config.member
                self.emit("reactor/master/start", started)
                services = [
                    tasks.create_task(self.zap.serve(), name="zap"),
                    tasks.create_task(self.link.serve(), name="link"),
                    tasks.create_task(self.ingest.serve(), name="ingest"),
                    tasks.create_task(self._retention(), name="retention"),
                    tasks.create_task(self.reactor.tick(), name="reactor"),
                    tasks.create_task(self.control.serve(), name="control"),
                    tasks.create_task(self._tick(), name="presence"),
                ]
                if self.key_service is not None:
                    services.append(tasks.create_task(self.key_service.serve(), name="keys"))
                if self.cluster is not None:
                    services.append(tasks.create_task(self.cluster.run(), name="cluster"))
                await self.stop_event.wait()
                for task in services:
                    task.cancel()
                await self._close_http()
                await self.reactor.close()
                if self.cluster is not None:
                    await self.cluster.close()
        except* StorageDamaged as group:
            damaged = group.exceptions[0]
            log.error("master stopped: %s", damaged)
            raise damaged from None
        finally:
            self.close()
            log.info("master stopped")

    async def _retention(self) -> None:
        """Retention by age and count every minute; by bytes every second (the check is cheap)."""
        retention = self.config.event_log
        rounds = 0
        while True:
            try:
                removed = self._prune() if rounds % 60 == 0 else 0
                while retention.max_bytes and (chunk := self._prune_bytes(retention.max_bytes)):
                    removed += chunk
                    await asyncio.sleep(0)  # a chunk at a time: the loop runs between them
            except StorageFull:
                pass  # the pipeline reports the full disk; pruning tries again
            else:
                if removed:
                    log.info("retention: removed %d old records", removed)
            rounds += 1
            await asyncio.sleep(1)

    def _prune_bytes(self, max_bytes: int) -> int:
        """One chunk of retention by bytes, when the database uses more than ``max_bytes`` (its
        pages in use: SQLite counts them, so the check costs nothing). The oldest events go
        first; the state table may hold at most half of the bound, then its rows updated
        longest ago go. Freed pages are reused, so the file stops growing at the bound."""
        used = self.db.used_bytes()
        if used <= max_bytes:
            return 0
        state = self.state_table.data_bytes()
        if state > max_bytes // 2:
            return self.state_table.prune_oldest(state - max_bytes // 2)
        return self.event_log.prune_oldest(used - max_bytes)

    def _prune(self) -> int:
        """Retention by age and count (every minute)."""
        retention = self.config.event_log
        removed = self.event_log.prune(
            max_age=retention.max_age, max_count=retention.max_count, now=self.clock()
        )
        if retention.max_age:
            before = self.clock() - retention.max_age
            removed += self.reactor.audit.prune(before) + self.job_store.prune(before)
            removed += self.state_table.prune(before)
        return removed + self.deliveries.prune(self.clock())  # webhook dedupe keys past their window

    async def _tick(self) -> None:
        while True:
            self.presence.tick(self.clock())
            self.pipeline.flush_held()
            self.pipeline.check_storage()
            if self.metrics is not None:
                self.metrics.refresh()
            await asyncio.sleep(min(1.0, self.config.presence.heartbeat))

    def install_signals(self, reopen_log: Callable[[], None]) -> None:
        """SIGTERM and SIGINT stop; SIGHUP reloads the rules and reopens the log file."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop_event.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_event.set)

        def hangup() -> None:
            reopen_log()  # when it fails, it says so and the old file goes on
            self.reactor.reload()

        loop.add_signal_handler(signal.SIGHUP, hangup)

    async def _close_http(self) -> None:
        if self.http is not None:
            server, self.http = self.http, None
            await server.close()

    def close(self) -> None:
        self.control.close()
        if self.key_service is not None:
            self.key_service.close()
        self.ingest.close()
        self.link.close()
        self.bus.close()
        self.zap.close()
        self.registry.flush()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.close()
        if self._own_ctx:
            self.ctx.term()
