"""The reactor inside the master: rules loaded and reloaded, every event decided and recorded.

The event pipeline asks it to decide each batch before the batch is written (``decide``).
Everything the decision changed goes into the same transaction as the events: the decisions
on the events' own rows, the rule state that changed (throttles, windows, holds) and the
actions of every firing (the action outbox). Only once that is committed are the firings
handed to the action dispatcher (``committed``); when the write fails, the rule state goes
back to what the database holds (``rolled_back``). So after any crash the log, the rule
state and the actions agree: a firing in the log has its actions, which are resumed at the
next start (``resume``), and a throttle that fired is remembered.

It also fires ``for`` holds from a tick (in a transaction of their own, with their rule
state and actions), and offers explain and replay to the control socket.

Its parts: ``rulefiles.py`` (the rule files, loaded all or nothing, and watched),
``actions.dispatcher`` (the action outbox and its running; ``actions.resume`` after a crash),
``explain.py`` and ``replay.py``. Storage is reached through the store's interfaces; the
actions reach the master through the ``ActionServices`` they are given.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reactord.actions.context import ActionServices
from reactord.actions.dispatcher import ActionDispatcher
from reactord.actions.kind import Registry
from reactord.actions.kinds import KINDS
from reactord.actions.queue import Firing
from reactord.actions.resume import unfinished
from reactord.base.stats import Stats
from reactord.explain import Explainer
from reactord.protocol import codec
from reactord.protocol.errors import StorageFull
from reactord.protocol.events import Event
from reactord.reactor.correlate import Minions
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.multievent import FleetCondition
from reactord.reactor.rules import Rule, RuleError, RuleSet
from reactord.reactor.rulestate import Changed, RuleState
from reactord.replay import Replayer
from reactord.rulefiles import RuleFiles
from reactord.store.eventlog import EventQuery, Writes
from reactord.store.interfaces import ActionLog, EventLog, RuleStore

if TYPE_CHECKING:
    from reactord.base.config import MasterConfig

log = logging.getLogger("reactord.reactor")


@dataclass(slots=True)
class Decided:
    """What deciding a batch produced: written with the events (``decisions``, ``writes``), then
    acted on (``firings``) or undone (``changed``, ``fired``)."""

    decisions: dict[str, bytes] = field(default_factory=dict)
    writes: Writes = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)
    changed: Changed = field(default_factory=list)
    fired: list[Decision] = field(default_factory=list)


class Reactor:
    """The pipeline's ``Decider``. ``latest``: ``(source, tag) -> the latest event`` (the state
    table's, for explaining an event that is not stored); ``services``: what the actions may
    use; ``kinds``: the action kinds rules may use."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        event_log: EventLog,
        rule_store: RuleStore,
        audit: ActionLog,
        latest: Callable[[str, str], Event | None],
        services: ActionServices,
        stats: Stats,
        kinds: Registry = KINDS,
        clock: Callable[[], float] = time.time,
        minions: Minions | None = None,
        fleet_latest: Callable[[], Iterable[Event]] | None = None,
    ) -> None:
        limits = config.reactor
        self.event_log = event_log
        self.rule_store = rule_store
        self.audit = audit
        self.stats = stats
        self.clock = clock
        self.watch_rules = limits.watch_rules
        #: Cluster mode: whether this master runs the actions of an event (owns its partition).
        self.owns: Callable[[Event], bool] | None = None
        #: Cluster mode: each event is decided at its arrival time, not at the time of the
        #: write, so that every master, applying the stream in batches of its own, decides alike.
        self.event_time = False
        self.rule_files = RuleFiles(config.rules, config.path.parent, config.nodegroups, kinds)
        state = RuleState(limits.state_limit, limits.hold_bytes, match_bytes=limits.match_bytes)
        state.load_rows(rule_store.rows())
        self.engine = Engine(RuleSet((), ()), state, max_depth=limits.max_depth, minions=minions)
        #: Every minion's latest events (the fleet state table), which fleet rules start from.
        self.fleet_latest = fleet_latest
        self.dispatcher = ActionDispatcher(
            audit,
            services,
            stats,
            kinds=kinds,
            max_concurrent=limits.max_concurrent_actions,
            max_pending=limits.max_pending_actions,
            max_pending_bytes=limits.max_pending_bytes,
            clock=clock,
        )
        self.explainer = Explainer(self.engine, audit, event_log, latest, clock)
        self.replayer = Replayer(
            self.engine,
            event_log,
            audit,
            self.dispatcher,
            self._announce,
            max_depth=limits.max_depth,
            clock=clock,
        )
        self.loaded_at = 0.0

    # -- rules ------------------------------------------------------------------------------------

    def load(self) -> RuleSet:
        """Load the rule set (all or nothing) and start using it; ``RuleError`` leaves the old one."""
        rules = self.rule_files.load(self.engine.counter)
        self.engine.swap(rules)
        if self.fleet_latest is not None and any(isinstance(r.multi, FleetCondition) for r in rules.rules):
            self.engine.seed_fleet(self.fleet_latest())
        # A large rule set is many long-lived objects: keep the cyclic garbage collector from
        # walking them again and again on the hot path (they are freed by reference counting).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.loaded_at = self.clock()
        log.info("loaded %d rules from %d files", len(rules.rules), len(rules.files))
        return rules

    def reload(self) -> tuple[bool, str]:
        try:
            rules = self.load()
        except RuleError as exc:
            log.error("rules not reloaded, the running set stays: %s", exc)
            return False, str(exc)
        return True, f"{len(rules.rules)} rules from {len(rules.files)} files"

    # -- events: the pipeline's Decider ------------------------------------------------------------

    def decide(self, pairs: list[tuple[Event, Event | None]]) -> Decided:
        """Decide every candidate rule for each event, before the events are written.

        The decisions go on the event rows, the rule state they changed and the actions of
        what fired into ``writes``: all in the events' transaction. A rule that cannot be
        evaluated on an event is recorded with its error (the engine isolates it).
        """
        now = self.clock()
        decided = Decided()
        actions: list[tuple[Any, ...]] = []
        errors = self.engine.errors
        for event, previous in pairs:
            at = event.received if self.event_time and event.received else now
            decisions = self.engine.evaluate(event, previous, at, explain=False)
            if not decisions:
                continue
            decided.decisions[event.id] = codec.pack([[d.rule.name, d.fired, d.reason] for d in decisions])
            for decision in decisions:
                if decision.fired:
                    decided.fired.append(decision)
                    # created at the decision's time: in a cluster, the event's arrival on
                    # every master, whatever batch each applies it in
                    ids, rows = self.dispatcher.action_rows(decision.rule, decision.event, now=at)
                    actions += rows
                    decided.firings.append(Firing(decision.rule, decision.event, ids))
                else:
                    self._record_limit(decision)
        decided.writes, decided.changed = self._rule_state_writes()
        decided.writes += self.audit.intent_writes(actions)
        if self.engine.errors != errors:
            self.stats.incr("reactor.errors", self.engine.errors - errors)
        return decided

    def committed(self, decided: Decided) -> None:
        """The batch is written: run what fired (in cluster mode, what fired on this master's
        partitions; the actions of the others wait in the outbox for their owner's word)."""
        for firing in decided.firings:
            if self.owns is not None and not self.owns(firing.event):
                continue
            self._announce(firing.rule, firing.event)
            self.dispatcher.enqueue(firing)

    def rolled_back(self, decided: Decided) -> None:
        """The batch's write failed: the rule state goes back to what the database holds."""
        self.engine.state.restore(decided.changed, self.rule_store.read)
        for decision in decided.fired:
            count = self.engine.fire_counts.get(decision.rule.name, 0)
            self.engine.fire_counts[decision.rule.name] = max(0, count - 1)

    def room(self) -> int:
        """Firings the action queue can take now (ingest takes no more events than that); 0
        while it is at its bound in count or bytes."""
        return 0 if self.dispatcher.saturated else self.dispatcher.room

    async def wait_room(self) -> None:
        """Return when the action queue has room: ingest waits here rather than refuse."""
        if self.dispatcher.saturated:
            self.stats.incr("ingest.paused")
        await self.dispatcher.wait_room()

    def _rule_state_writes(self) -> tuple[Writes, Changed]:
        """The rule state changed since the last call, as writes for the caller's transaction."""
        changes, changed = self.engine.state.take_changes()
        return self.rule_store.writes(changes), changed

    def _record_limit(self, decision: Decision) -> None:
        if decision.reason and decision.reason.startswith("depth limit"):
            self.stats.incr("reactor.depth_limited")
            log.warning(
                "%s not run on %s: %s",
                decision.rule.name,
                decision.event.tag,
                decision.reason,
                extra={"rule": decision.rule.name, "event_id": decision.event.id},
            )

    def _announce(self, rule: Rule, event: Event) -> None:
        self.stats.incr("reactor.fired")
        self.stats.incr_labeled("rule_matches", rule=rule.name)
        log.info("rule %s fired on %s", rule.name, event.tag, extra={"rule": rule.name, "event_id": event.id})

    # -- the tick: holds, the audit, changed rule files --------------------------------------------

    async def tick(self) -> None:
        """Fire ``for`` holds that are due, write the audit, reload changed rule files."""
        checks = 0
        while True:
            try:
                self.fire_due_holds()
                self.audit.flush()
            except StorageFull:
                pass  # the pipeline reports the full disk; holds are due again at the next tick
            checks += 1
            if self.watch_rules and checks % 4 == 0 and self.rule_files.changed():
                log.info("rule files changed on disk; reloading")
                self.reload()
                self.rule_files.remember()
            await asyncio.sleep(0.5)

    def fire_due_holds(self) -> int:
        """Fire the ``for`` holds that are due: their decisions, rule state and actions are
        written in one transaction, then run. Also writes rule state changed outside events
        (rules dropped by a reload). Returns how many fired."""
        now = self.clock()
        due = self.engine.due_holds(now)
        writes, changed = self._rule_state_writes()
        if not due and not writes:
            return 0
        decisions = [(d.event.id, d.rule.name, d.fired, d.reason, now, None) for d in due]
        firings, actions = [], []
        for decision in due:
            if decision.fired:
                ids, rows = self.dispatcher.action_rows(decision.rule, decision.event)
                actions += rows
                firings.append(Firing(decision.rule, decision.event, ids))
        try:
            self.event_log.append([], {}, writes=self.audit.intent_writes(actions, decisions) + writes)
        except BaseException:
            self.rolled_back(Decided(changed=changed, fired=[d for d in due if d.fired]))
            raise
        for firing in firings:
            if self.owns is not None and not self.owns(firing.event):
                continue
            self._announce(firing.rule, firing.event)
            self.dispatcher.enqueue(firing)
        return len(firings)

    def resume(self, keep: Callable[[Event], bool] | None = None) -> int:
        """Queue again the actions the last run of the master left unfinished; how many firings
        (``actions.resume`` says which can be; the others are marked ``interrupted``). With
        ``keep``, only those of the events it keeps (cluster mode: a partition taken over)."""
        firings, lost = unfinished(
            self.audit, self.engine.rules.by_name(), self.event_log.get, self.clock, keep
        )
        for firing in firings:
            self.dispatcher.enqueue(firing)
        if firings or lost:
            log.warning(
                "resumed %d firings the last stop left unfinished (%d could not be)", len(firings), lost
            )
        self.audit.try_flush()
        return len(firings)

    async def close(self) -> None:
        await self.dispatcher.close()
        try:
            self.audit.flush()
            self._flush_rule_state()
        except StorageFull as exc:
            log.error("could not write the last audit records and rule state: %s", exc)

    def _flush_rule_state(self) -> None:
        """Write what is left of the rule state in a transaction of its own (at shutdown)."""
        writes, changed = self._rule_state_writes()
        if not writes:
            return
        try:
            self.event_log.append([], {}, writes=writes)
        except BaseException:
            self.engine.state.restore(changed, self.rule_store.read)
            raise

    # -- explain and replay (explain.py, replay.py) ------------------------------------------------

    def recorded(self, event: Event) -> list[dict[str, Any]]:
        """What was decided when ``event`` arrived (``Explainer.recorded``)."""
        return self.explainer.recorded(event)

    def explain(self, event: Event, *, stored: bool) -> list[dict[str, Any]]:
        """What the loaded rules decide for ``event`` now, changing nothing."""
        return self.explainer.explain(event, stored=stored)

    def replay(self, query: EventQuery, dry_run: bool) -> AsyncIterator[dict[str, Any]]:
        """Feed stored events to the rules again, oldest first, with fresh rule state."""
        return self.replayer.replay(query, dry_run)
