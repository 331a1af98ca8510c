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
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactord.actions.context import ActionServices
from reactord.actions.dispatcher import ActionDispatcher
from reactord.actions.kinds import KINDS
from reactord.actions.queue import Firing
from reactord.base.stats import Stats
from reactord.protocol import codec
from reactord.protocol.errors import StorageFull
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.rules import Rule, RuleError, RuleSet, load_rule_set, rule_files
from reactord.reactor.rulestate import Changed, RuleState
from reactord.store.audit import ADD_ACTION, ADD_DECISION, AuditLog
from reactord.store.eventlog import EventQuery, Writes
from reactord.store.rulestore import SqliteRuleStore

if TYPE_CHECKING:
    from reactord.base.config import MasterConfig
    from reactord.jobrunner import JobRunner
    from reactord.pipeline import EventPipeline
    from reactord.store.database import Database
    from reactord.store.eventlog import EventLog

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
    def __init__(
        self,
        config: MasterConfig,
        db: Database,
        pipeline: EventPipeline,
        event_log: EventLog,
        jobs: JobRunner,
        resolve_target: Callable[[str, str], list[str]],
        stats: Stats,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.event_log = event_log
        self.jobs = jobs
        self.resolve_target = resolve_target
        self.stats = stats
        self.clock = clock
        self.db = db
        self.audit = AuditLog(db)
        self.rule_store = SqliteRuleStore(db)
        state = RuleState(config.reactor.state_limit, config.reactor.hold_bytes)
        state.load_rows(self.rule_store.rows())
        self.engine = Engine(RuleSet((), ()), state, max_depth=config.reactor.max_depth)
        services = ActionServices(
            max_depth=config.reactor.max_depth,
            emit=self._emit,
            made_by=event_log.by_action,
            jobs=jobs,
            resolve_target=resolve_target,
            check_gate=self.check_gate,
        )
        self.dispatcher = ActionDispatcher(
            self.audit,
            services,
            stats,
            max_concurrent=config.reactor.max_concurrent_actions,
            max_pending=config.reactor.max_pending_actions,
            max_pending_bytes=config.reactor.max_pending_bytes,
            clock=clock,
        )
        self.loaded_at = 0.0
        self._mtimes: dict[str, float] = {}
        pipeline.decider = self

    # -- rules ------------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return rule_files(self.config.rules, self.config.path.parent)

    def load(self) -> RuleSet:
        """Load the rule set (all or nothing) and start using it; ``RuleError`` leaves the old one."""
        files = self.files()
        rules = load_rule_set(files, self.engine.counter, self.config.nodegroups, kinds=KINDS)
        self.engine.swap(rules)
        # A large rule set is many long-lived objects: keep the cyclic garbage collector from
        # walking them again and again on the hot path (they are freed by reference counting).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.loaded_at = self.clock()
        self._mtimes = _mtimes(files)
        log.info("loaded %d rules from %d files", len(rules.rules), len(rules.files))
        return rules

    def reload(self) -> tuple[bool, str]:
        try:
            rules = self.load()
        except RuleError as exc:
            log.error("rules not reloaded, the running set stays: %s", exc)
            return False, str(exc)
        return True, f"{len(rules.rules)} rules from {len(rules.files)} files"

    def changed_on_disk(self) -> bool:
        return _mtimes(self.files()) != self._mtimes

    # -- events -----------------------------------------------------------------------------------

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
            decisions = self.engine.evaluate(event, previous, now, explain=False)
            if not decisions:
                continue
            decided.decisions[event.id] = codec.pack([[d.rule.name, d.fired, d.reason] for d in decisions])
            for decision in decisions:
                if decision.fired:
                    decided.fired.append(decision)
                    ids, rows = self.dispatcher.action_rows(decision.rule, decision.event)
                    actions += rows
                    decided.firings.append(Firing(decision.rule, decision.event, ids))
                else:
                    self._record_limit(decision)
        decided.writes, decided.changed = self._rule_state_writes()
        if actions:
            decided.writes.append((ADD_ACTION, actions))
        if self.engine.errors != errors:
            self.stats.incr("reactor.errors", self.engine.errors - errors)
        return decided

    def _rule_state_writes(self) -> tuple[Writes, Changed]:
        """The rule state changed since the last call, as writes for the caller's transaction."""
        changes, changed = self.engine.state.take_changes()
        return self.rule_store.writes(changes), changed

    def _flush_rule_state(self) -> None:
        """Write what is left of the rule state in a transaction of its own (at shutdown)."""
        writes, changed = self._rule_state_writes()
        if not writes:
            return
        try:
            with self.db.transaction() as conn:
                for sql, rows in writes:
                    conn.executemany(sql, rows)
        except BaseException:
            self.engine.state.restore(changed, self.rule_store.read)
            raise

    def committed(self, decided: Decided) -> None:
        """The batch is written: run what fired."""
        for firing in decided.firings:
            self._announce(firing.rule, firing.event)
            self.dispatcher.enqueue(firing)

    def room(self) -> int:
        """Firings the action queue can take now (ingest takes no more events than that); 0
        while it is at its bound in count or bytes."""
        return 0 if self.dispatcher.saturated else self.dispatcher.room

    async def wait_room(self) -> None:
        """Return when the action queue has room: ingest waits here rather than refuse."""
        if self.dispatcher.saturated:
            self.stats.incr("ingest.paused")
        await self.dispatcher.wait_room()

    def rolled_back(self, decided: Decided) -> None:
        """The batch's write failed: the rule state goes back to what the database holds."""
        self.engine.state.restore(decided.changed, self.rule_store.read)
        for decision in decided.fired:
            count = self.engine.fire_counts.get(decision.rule.name, 0)
            self.engine.fire_counts[decision.rule.name] = max(0, count - 1)

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

    def _emit(
        self,
        tag: str,
        data: dict[str, Any],
        *,
        source: str = "reactor",
        causation: str | None = None,
        depth: int = 0,
        action: str | None = None,
    ) -> Event:
        return self.pipeline.emit(tag, data, source=source, causation=causation, depth=depth, action=action)

    #: Set by the master: ``(gate spec, the action's minions) -> why the gate is closed, or None``.
    gate: Callable[[dict[str, Any], list[str]], str | None] | None = None

    def check_gate(self, spec: dict[str, Any], minions: list[str]) -> str | None:
        if self.gate is None:
            return "no fleet state to check the gate against"
        return self.gate(spec, minions)

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
            if self.config.reactor.watch_rules and checks % 4 == 0 and self.changed_on_disk():
                log.info("rule files changed on disk; reloading")
                self.reload()
                self._mtimes = _mtimes(self.files())
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
            with self.db.transaction() as conn:
                conn.executemany(ADD_DECISION, decisions)
                conn.executemany(ADD_ACTION, actions)
                for sql, rows in writes:
                    conn.executemany(sql, rows)
        except BaseException:
            self.rolled_back(Decided(changed=changed, fired=[d for d in due if d.fired]))
            raise
        for firing in firings:
            self._announce(firing.rule, firing.event)
            self.dispatcher.enqueue(firing)
        return len(firings)

    def resume(self) -> int:
        """Queue again the actions the last run of the master left unfinished; how many firings.

        An action is resumed where it can still be: its event is in the log and its rule is
        loaded with the same actions. Others are marked ``interrupted`` with the reason.
        """
        groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        for row in self.audit.unfinished():
            groups.setdefault((row["event_id"], row["rule"], row["replay"]), []).append(row)
        rules = self.engine.rules.by_name()
        resumed = 0
        for (event_id, rule_name, replay), rows in groups.items():
            firing, why = self._resumable(event_id, rules.get(rule_name), replay, rows)
            if firing is None:
                for row in rows:
                    self.audit.update_action(
                        row["id"], status="interrupted", finished=self.clock(), error=why
                    )
                continue
            self.dispatcher.enqueue(firing)
            resumed += 1
        if groups:
            log.warning(
                "resumed %d firings the last stop left unfinished (%d could not be)",
                resumed,
                len(groups) - resumed,
            )
        self.audit.try_flush()
        return resumed

    def _resumable(
        self, event_id: str, rule: Rule | None, replay: str | None, rows: list[dict[str, Any]]
    ) -> tuple[Firing | None, str]:
        if any(r["idx"] < 0 for r in rows):
            return None, "the master stopped during this retry of a dead letter; retry it again"
        if rule is None:
            return None, "the master stopped before it ran, and its rule is no longer loaded"
        event = self.event_log.get(event_id)
        if event is None:
            return None, "the master stopped before it ran, and retention removed its event"
        ids: list[str | None] = [None] * len(rule.do)
        for action in self.audit.actions_for(event_id):
            if action["rule"] != rule.name or action.get("replay") != replay or action["idx"] < 0:
                continue
            index = action["idx"]
            if index >= len(ids) or rule.do[index].kind != action["kind"]:
                return None, "the master stopped before it ran, and its rule changed since"
            ids[index] = action["id"]
        if any(i is None for i in ids):
            return None, "the master stopped before it ran, and its rule changed since"
        start = min(r["idx"] for r in rows)
        return Firing(rule, event, [i for i in ids if i is not None], replay, start, resumed=True), ""

    async def close(self) -> None:
        await self.dispatcher.close()
        try:
            self.audit.flush()
            self._flush_rule_state()
        except StorageFull as exc:
            log.error("could not write the last audit records and rule state: %s", exc)

    # -- explain and replay ----------------------------------------------------------------------

    def recorded(self, event: Event) -> list[dict[str, Any]]:
        """What was decided when ``event`` arrived.

        Firings and refusals by state (throttle, threshold, for, depth) are recorded with the
        event; misses on ``when`` or ``changed`` depend only on the event and the one before
        it, so they are worked out again here (marked ``recomputed``).
        """
        recorded = self.audit.decisions(event.id)
        named = {d["rule"] for d in recorded if not d.get("replay")}
        previous = self.event_log.previous(event)
        for decision in self.engine.evaluate(event, previous, event.received, commit=False):
            if decision.rule.name in named:
                continue
            reason = decision.reason if not decision.fired else "not recorded: the rules changed since?"
            recorded.append(
                {
                    "rule": decision.rule.name,
                    "fired": False,
                    "reason": reason,
                    "time": event.received,
                    "recomputed": True,
                }
            )
        return recorded

    def explain(self, event: Event, *, stored: bool) -> list[dict[str, Any]]:
        """What the loaded rules decide for ``event`` now (without changing any state).

        A stored event is compared with the event that came before it; a new one with the
        latest of its source and tag.
        """
        if stored:
            previous = self.event_log.previous(event)
        else:
            previous = self.pipeline.state.previous(event.source, event.tag)
        return [d.public() for d in self.engine.evaluate(event, previous, self.clock(), commit=False)]

    async def replay(self, query: EventQuery, dry_run: bool) -> AsyncIterator[dict[str, Any]]:
        """Feed stored events to the rules again, oldest first, with fresh rule state."""
        replay_id = new_id(self.clock())
        engine = Engine(self.engine.rules, max_depth=self.config.reactor.max_depth)
        previous: dict[tuple[str, str], Event] = {}
        oldest_first = replace(query, newest_first=False)
        # Counted first, then read again page by page: memory stays bounded whatever the range;
        # the count also fixes the end, so events logged meanwhile (the replay's own) are not fed.
        total, last_id = 0, ""
        for counted in self.event_log.iterate(oldest_first):
            total, last_id = total + 1, counted.id
            if total % 1000 == 0:
                await asyncio.sleep(0)
        fired = 0
        yield {"replay": replay_id, "total": total, "done": 0, "fired": 0, "dry_run": dry_run}
        events = itertools.takewhile(lambda e: e.id <= last_id, self.event_log.iterate(oldest_first))
        for done, stored in enumerate(events, start=1):
            if not dry_run and self.dispatcher.saturated:
                await self.dispatcher.wait_room()  # a long replay waits for the action queue too
            event = replace(stored, replayed=True)
            key = (event.source, event.tag)
            decisions = engine.evaluate(event, previous.get(key), event.received or event.time)
            previous[key] = event
            rows = []
            for decision in decisions:
                rows.append(
                    (event.id, decision.rule.name, decision.fired, decision.reason, self.clock(), replay_id)
                )
                if decision.fired:
                    fired += 1
                    if not dry_run:
                        self._announce(decision.rule, decision.event)
                        self.dispatcher.submit(decision.rule, decision.event, replay=replay_id)
            if not dry_run:
                self.audit.record_decisions(rows)
            item: dict[str, Any] = {"done": done, "total": total, "fired": fired}
            if any(d.fired for d in decisions):
                item["event"] = {
                    "id": event.id,
                    "tag": event.tag,
                    "rules": [d.rule.name for d in decisions if d.fired],
                }
            yield item
            if done % 200 == 0:
                await asyncio.sleep(0)  # let the master breathe during long replays


def _mtimes(files: list[Path]) -> dict[str, float]:
    out = {}
    for path in files:
        try:
            out[str(path)] = os.stat(path).st_mtime
        except OSError:
            continue
    return out
