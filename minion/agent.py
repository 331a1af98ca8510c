"""The minion daemon: one owner object; its main loop fits on a screen.

It pins the master's key, connects, says hello until accepted, then sends heartbeats, runs
the commands it receives (signed, for it, not expired, never twice) and re-sends returns
until acknowledged. It never exits because the master is away or misbehaves: it logs and
tries again with backoff.

With several masters (``master:`` a list) it is on one at a time, and fails over to the next
when the current one is silent for three heartbeats, or refuses to be trusted (another
signing key): both links move, the hello is said again, and the outbox is sent again from
the first unacknowledged event. After the last master the first comes again, with the
retry backoff between full rounds. One master: none of this, as before.

Its state files are opened (and checked whole) before anything connects. A full disk stops
nothing: events are refused at the door, acks and returns wait in memory, a command whose
claim cannot be written is refused, and all resumes by itself once there is space. A
damaged state file, at start or later, stops the minion: ``run`` raises ``StorageDamaged``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import zmq
import zmq.asyncio

from minion import grains as grains_mod
from minion import local, pinning
from minion.beacons.runner import BeaconManager, build_slots
from minion.commands import Commands
from minion.config import MinionConfig
from minion.connection import MasterConnection, MasterList, curve_client_socket
from minion.delivery import Delivery
from minion.errors import FunctionError, MasterKeyError, OutboxUnavailable
from minion.executor import Executor
from minion.functions import allowed
from minion.functions.context import Settings
from minion.outbox import Outbox
from minion.plugins import Registry, load_registry
from minion.state import MinionState
from reactord.protocol import __version__
from reactord.protocol import messages as m
from reactord.protocol.errors import ConfigError, DecodeError, StorageDamaged
from reactord.protocol.keys import CurveKeys, ensure_private_dir
from reactord.protocol.localsock import LocalServer
from reactord.protocol.metricsserver import MetricsServer, Snapshot

log = logging.getLogger("minion")


class Agent:
    def __init__(
        self,
        config: MinionConfig,
        *,
        ctx: zmq.asyncio.Context | None = None,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """Build every part of the minion (the composition root).

        Longer than the house's 60 lines on purpose: it reads as the list of the minion's
        parts and what each is given, top to bottom; split, the wiring would be scattered.
        """
        self.config = config
        # Wall time (timestamps, command expiry) and monotonic time (the master's silence,
        # delivery backoff), passed to every part that reads either.
        self.clock = clock
        self.monotonic = monotonic
        registry = registry or load_registry(
            config.plugins.dirs, use_entry_points=config.plugins.entry_points
        )
        try:
            slots = build_slots(config.beacons, registry.beacons)
        except ValueError as exc:
            raise ConfigError(str(config.path), None, str(exc)) from None
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.asyncio.Context()
        self.keys = CurveKeys.load_or_create(config.pki_dir, "minion")
        ensure_private_dir(config.state_dir)
        self.state = MinionState(config.database)  # StorageDamaged here: nothing has started yet
        try:
            self.outbox = Outbox(
                config.outbox_path,
                config.id,
                max_events=config.outbox.max_events,
                policy=config.outbox.when_full,
                max_event_bytes=config.max_message_size // 2 - 1024,
                clock=clock,
                monotonic=monotonic,
            )
        except BaseException:
            self.state.close()
            raise
        self.damaged: StorageDamaged | None = None
        self.local = LocalServer(config.local_socket, local.handlers(self), daemon="minion")
        self.metrics = self._metrics_server() if config.metrics.address else None
        self.delivery: Delivery | None = None
        self.started = clock()
        self.grains = grains_mod.collect(config.grains)
        self.functions = allowed(registry.functions, config.functions.allow)
        self.beacons = BeaconManager(slots, self.emit_many, clock=clock)
        self.executor = Executor(
            config.id,
            self.functions,
            self.grains,
            config.job_workers,
            max_return_bytes=config.max_message_size // 2,
            known=registry.functions,
            settings=Settings(
                shell=config.functions.shell,
                file_roots=config.functions.file_roots,
                cmd_timeout=config.functions.cmd_timeout,
                max_output=config.functions.max_output,
            ),
            emit=self._emit_from_job,
            beacons=self.beacons,
            clock=clock,
        )
        self.commands = Commands(
            config.id, self.state, self.executor, self._send_raw, self._guarded, clock=clock
        )
        self.stop_event = asyncio.Event()
        self.status = "connecting"  # connecting | pending | rejected | denied | accepted
        self.heartbeat = 5.0
        self.signing_key: bytes | None = None
        self.last_answer = 0.0
        self._welcomed = asyncio.Event()
        self.conn: MasterConnection | None = None
        self.master_key: bytes | None = None
        # Failover: the masters in the order tried (``rng`` shuffles it with master_shuffle).
        self.masters = MasterList(config.master, shuffle=config.master_shuffle, rng=rng)
        self._arrived = monotonic()  # when we moved to the current master
        self._refused = False  # the current master offered a signing key that is not pinned
        self._round_delay = 0.5  # the wait before a new round of masters, doubling

    def _metrics_server(self) -> MetricsServer:
        """The ``/metrics`` endpoint; only here is Prometheus imported (``metrics.address`` set)."""
        from minion.metrics import MinionCollector

        return MetricsServer(self.config.metrics.address, Snapshot(MinionCollector(self).collect))

    # -- main loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        log.info("minion %s %s starting (key %s)", self.config.id, __version__, self.keys.finger)
        asyncio.get_running_loop().set_exception_handler(_quiet_cancellations)
        try:
            if self.metrics is not None:
                self.metrics.start()  # before the master is reached: a stuck minion is seen too
            self.master_key = await self._obtain_master_key()
            if self.master_key is None:
                return
            self.conn = MasterConnection(
                self.ctx, self.config, self.keys, self.master_key, self.masters.current
            )
            self.delivery = self._delivery(self.master_key)
            await self.local.start()
            async with asyncio.TaskGroup() as tasks:
                services = [
                    tasks.create_task(self._guarded(self._receive()), name="receive"),
                    tasks.create_task(self._guarded(self._session()), name="session"),
                    tasks.create_task(self._guarded(self.delivery.run()), name="delivery"),
                    tasks.create_task(self.local.serve(), name="local"),
                    tasks.create_task(self.beacons.run(), name="beacons"),
                    tasks.create_task(self._refresh_metrics(), name="metrics"),
                ]
                await self.stop_event.wait()
                for task in services:
                    task.cancel()
        finally:
            self.close()
            log.info("minion %s stopped", self.config.id)
        if self.damaged is not None:
            raise self.damaged

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one of the agent's tasks; a damaged state file stops the minion, not a traceback."""
        try:
            await work
        except StorageDamaged as exc:
            self._fatal(exc)

    def _fatal(self, exc: StorageDamaged) -> None:
        if self.damaged is None:
            self.damaged = exc
            log.error("stopping: %s", exc)
        self.stop_event.set()

    async def _send_raw(self, wire: bytes) -> None:
        if self.conn is not None:
            await self.conn.send_raw(wire)

    def install_signals(self, reopen_log: Callable[[], None] = lambda: None) -> None:
        """SIGTERM and SIGINT stop; SIGHUP reopens the log file (after the OS rotated it)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, reopen_log)

    def _event_socket(self, master_key: bytes, host: str) -> zmq.asyncio.Socket:
        pub = curve_client_socket(self.ctx, zmq.PUB, self.keys, master_key, self.config.max_message_size)
        # Nothing queues for a connection that is not up (the outbox is the queue), and what
        # does queue is bounded: a little more than one window of batches.
        pub.setsockopt(zmq.IMMEDIATE, 1)
        pub.setsockopt(
            zmq.SNDHWM, 2 * max(1, self.config.outbox.window // self.config.outbox.batch_events) + 2
        )
        pub.connect(self.config.endpoint(host, self.config.event_port))
        return pub

    def _delivery(self, master_key: bytes) -> Delivery:
        return Delivery(
            self.outbox,
            self._event_socket(master_key, self.masters.current),
            ready=lambda: self.status == "accepted",
            batch_events=self.config.outbox.batch_events,
            batch_bytes=self.config.max_message_size // 2,
            window=self.config.outbox.window,
            monotonic=self.monotonic,
        )

    def emit_many(self, events: list[tuple[str, dict[str, Any]]], causation: str | None = None) -> list[int]:
        """Put events in the durable outbox (under ``minion/<id>/``) and wake the delivery.

        Raises ``OutboxUnavailable`` on a full disk (nothing queued; the caller says so).
        """
        try:
            seqs = self.outbox.append(events, causation=causation)
        except StorageDamaged as exc:
            self._fatal(exc)
            raise
        if self.delivery is not None:
            self.delivery.notify()
        return seqs

    def _emit_from_job(self, events: list[tuple[str, dict[str, Any]]], causation: str | None) -> list[int]:
        """``emit_many`` for a job thread: the outbox is only touched from the event loop."""
        loop = self.executor.loop
        assert loop is not None

        async def emit() -> list[int]:
            try:
                return self.emit_many(events, causation)
            except OutboxUnavailable as exc:  # the job's error, in the job's return
                raise FunctionError(str(exc)) from exc

        return asyncio.run_coroutine_threadsafe(emit(), loop).result(30)

    def status_report(self) -> dict[str, Any]:
        delivery = self.delivery
        return {
            "id": self.config.id,
            "version": __version__,
            "uptime": self.clock() - self.started,
            "master": self.masters.current,
            "masters": list(self.masters.hosts),
            "status": self.status,
            "beacons": self.beacons.listing(),
            "outbox": {
                "epoch": self.outbox.epoch,
                "depth": self.outbox.depth,
                "max_events": self.outbox.max_events,
                "dropped": self.outbox.dropped,
                "next_seq": self.outbox.next_seq,
                "acked": delivery.acked if delivery else 0,
                "sent": delivery.sent if delivery else 0,
            },
        }

    def close(self) -> None:
        self.executor.cancel_all()
        if self.metrics is not None:
            self.metrics.close()
        self.local.close()
        if self.delivery is not None:
            self.delivery.socket.close(linger=0)
        if self.conn is not None:
            self.conn.close()
        self.outbox.close()
        self.state.close()
        if self._own_ctx:
            self.ctx.term()

    # -- master key ---------------------------------------------------------------------------

    async def _obtain_master_key(self) -> bytes | None:
        return await pinning.obtain_master_key(
            self.ctx, self.config, self.masters, sleep=self._sleep, stopping=self.stop_event.is_set
        )

    def _endpoint(self, port: int) -> str:
        """One of the current master's ports."""
        return self.config.endpoint(self.masters.current, port)

    async def _diagnose_master_key(self) -> None:
        """After the master stopped answering: is it another key on the other end?"""
        assert self.master_key is not None
        await pinning.diagnose(self.ctx, self.config, self.masters.current, self.master_key)

    # -- the session: hello until accepted, then heartbeats -------------------------------------

    async def _refresh_metrics(self) -> None:
        while self.metrics is not None:
            self.metrics.collector.refresh()
            await self._sleep(1.0)

    async def _session(self) -> None:
        assert self.conn is not None
        delay = 0.5
        unanswered = 0
        self._arrived = self.monotonic()
        while not self.stop_event.is_set():
            if self.status != "accepted":
                self._welcomed.clear()
                await self.conn.send(self._hello())
                if not await self._wait_welcome(delay):
                    unanswered += 1
                    if unanswered in (3, 10) or unanswered % 30 == 0:
                        log.warning(
                            "no answer from the master at %s yet", self._endpoint(self.config.command_port)
                        )
                        await self._diagnose_master_key()
                    delay = min(delay * 2, self.config.retry_max)
                    if self.masters.several and (self._refused or self._silence() > 3 * self.heartbeat):
                        await self._fail_over()
                        delay, unanswered = 0.5, 0
                    continue
                unanswered = 0
                if self.status == "accepted":
                    delay = 0.5
                    continue
                # pending, rejected or denied: ask again later; an accept is pushed at once
                self._welcomed.clear()
                await self._wait_welcome(delay)
                delay = min(delay * 2, self.config.retry_max)
                continue
            await self.conn.send(m.Heartbeat(time=self.clock(), outbox=self.outbox.depth))
            await self.commands.resend_returns()
            await self._sleep(self.heartbeat)
            if self.monotonic() - self.last_answer > 3 * self.heartbeat and self.status == "accepted":
                if self.masters.several:
                    await self._fail_over()
                    delay, unanswered = 0.5, 0
                    continue
                log.warning("the master stopped answering; saying hello again")
                self.status = "connecting"

    def _silence(self) -> float:
        """How long the current master has said nothing (counted from our move to it)."""
        return self.monotonic() - max(self.last_answer, self._arrived)

    async def _fail_over(self) -> None:
        """Leave the current master for the next one on the list (several masters only).

        Both links move (a new socket each), the status goes back to connecting (the session
        says hello there) and the delivery's in-flight window is reset: the new master gets
        every event not acknowledged, from the first one. After a full round of masters
        without a welcome, it waits first, as between two attempts (doubling to retry_max).
        """
        assert self.conn is not None and self.delivery is not None and self.master_key is not None
        old, silence = self.masters.current, self._silence()
        if self._refused:
            why = "refused (its signing key is not the pinned one)"
        else:
            why = f"lost (no answer for {silence:.1f}s)"
            if self.last_answer < self._arrived:  # it never answered: another key there?
                await self._diagnose_master_key()
        full_round = self.masters.advance()
        new = self.masters.current
        log.info("master %s %s; trying %s (%s)", old, why, new, self.masters.position)
        self.status = "connecting"
        self._refused = False
        self.conn.move_to(new)
        self.delivery.move_to(self._event_socket(self.master_key, new))
        if full_round:
            log.info(
                "no master has answered in a full round; waiting %.1fs before %s", self._round_delay, new
            )
            await self._sleep(self._round_delay)
            self._round_delay = min(self._round_delay * 2, self.config.retry_max)
        self._arrived = self.monotonic()

    async def _wait_welcome(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._welcomed.wait()
        except TimeoutError:
            return False
        return True

    def _hello(self) -> m.Hello:
        return m.Hello(
            id=self.config.id,
            grains=self.grains,
            version=__version__,
            functions=sorted(self.functions),
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the agent is asked to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop_event.wait()

    # -- receiving --------------------------------------------------------------------------------

    async def _receive(self) -> None:
        assert self.conn is not None
        while True:
            data = await self.conn.recv()
            try:
                message = m.decode(data, max_size=self.config.max_message_size)
            except DecodeError as exc:
                log.warning("dropped a malformed message from the master: %s", exc)
                continue
            self.last_answer = self.monotonic()
            if isinstance(message, m.Welcome):
                self._on_welcome(message)
            elif isinstance(message, m.Command):
                if self.status != "accepted" or self.signing_key is None:
                    log.warning("dropped a command received before the master accepted us")
                else:
                    self.commands.on_command(message, self.signing_key)
            elif isinstance(message, m.ReturnAck):
                self.state.ack(message.jid)
            elif isinstance(message, m.Ack):
                if self.delivery is not None:
                    self.delivery.on_ack(message.epoch, message.seq)
            elif not isinstance(message, m.Pong):
                log.debug("ignored a %s message", message.kind)

    def _on_welcome(self, welcome: m.Welcome) -> None:
        previous = self.status
        if welcome.status == "accepted":
            try:
                self.signing_key = pinning.check_signing_key(self.config, welcome.signing_key)
            except MasterKeyError as exc:
                log.error("%s", exc)
                self.status = "connecting"
                self._refused = True  # with several masters, the session moves on
                return
            self.heartbeat = max(0.05, welcome.heartbeat)
            if self.status != "accepted" and self.delivery is not None:
                self.delivery.restart()
            self.masters.settled()
            self._round_delay = 0.5
        self.status = welcome.status
        if self.status != previous:
            level = logging.INFO if self.status in ("accepted", "pending") else logging.ERROR
            log.log(
                level,
                "master says: key %s%s",
                self.status,
                f" ({welcome.message})" if welcome.message else "",
            )
        self._welcomed.set()


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's error handler, without the noise of a cancelled task.

    A local client still connected when the minion stops (``event send`` reading the answer
    that made it stop) has its connection task cancelled; Python 3.11's asyncio.streams then
    reports the cancellation as an error with a traceback (3.12 closes it quietly).
    """
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)
