"""The reactor inside the master: rules loaded and reloaded, every event decided and recorded.

The event pipeline asks it to decide each batch before the batch is written (``decide``):
the decisions are stored on the events' own rows in the same transaction, and only once
that is committed are fired rules handed to the action dispatcher (``dispatch``). It also
fires ``for`` holds from a tick, keeps rule state persisted, and offers explain and replay
to the control socket.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactord.actions.context import ActionContext
from reactord.actions.dispatcher import ActionDispatcher
from reactord.protocol import codec
from reactord.protocol.events import Event
from reactord.protocol.ids import new_id
from reactord.reactor.engine import Decision, Engine
from reactord.reactor.rules import RuleError, RuleSet, load_rule_set, rule_files
from reactord.reactor.state import RuleState
from reactord.stats import Stats
from reactord.store.audit import AuditLog
from reactord.store.events import EventQuery
from reactord.store.state import RuleStateStore

if TYPE_CHECKING:
    from reactord.config import MasterConfig
    from reactord.jobs import JobDispatcher
    from reactord.pipeline import EventPipeline
    from reactord.store.database import Database
    from reactord.store.events import EventLog

log = logging.getLogger("reactord.reactor")


class Reactor:
    def __init__(
        self,
        config: MasterConfig,
        db: Database,
        pipeline: EventPipeline,
        event_log: EventLog,
        jobs: JobDispatcher,
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
        self.audit = AuditLog(db)
        self.state_store = RuleStateStore(db)
        state = RuleState(config.reactor.state_limit)
        self.state_store.load(state)
        self.engine = Engine(RuleSet((), ()), state, max_depth=config.reactor.max_depth)
        self.dispatcher = ActionDispatcher(
            self.audit,
            self._context,
            stats,
            max_concurrent=config.reactor.max_concurrent_actions,
            max_pending=config.reactor.max_pending_actions,
            clock=clock,
        )
        self.loaded_at = 0.0
        self._mtimes: dict[str, float] = {}
        interrupted = self.audit.interrupt_unfinished(clock())
        if interrupted:
            log.warning("%d actions were cut short by the last stop; see their events", len(interrupted))
        pipeline.decider = self

    # -- rules ------------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return rule_files(self.config.rules, self.config.path.parent)

    def load(self) -> RuleSet:
        """Load the rule set (all or nothing) and start using it; ``RuleError`` leaves the old one."""
        files = self.files()
        rules = load_rule_set(files, self.engine.counter)
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

    def decide(self, pairs: list[tuple[Event, Event | None]]) -> tuple[dict[str, bytes], list[Decision]]:
        """Decide every candidate rule for each event, before the events are written.

        The decisions go on the event rows (in the same transaction); what fired is
        dispatched once they are written.
        """
        now = self.clock()
        decided: dict[str, bytes] = {}
        fired: list[Decision] = []
        for event, previous in pairs:
            decisions = self.engine.evaluate(event, previous, now, explain=False)
            if not decisions:
                continue
            decided[event.id] = codec.pack([[d.rule.name, d.fired, d.reason] for d in decisions])
            for decision in decisions:
                if decision.fired:
                    fired.append(decision)
                else:
                    self._record_limit(decision)
        return decided, fired

    def dispatch(self, fired: list[Decision]) -> None:
        for decision in fired:
            self._fire(decision)

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

    def _fire(self, decision: Decision, replay: str | None = None) -> None:
        self.stats.incr("reactor.fired")
        self.stats.incr_labeled("rule_matches", rule=decision.rule.name)
        log.info(
            "rule %s fired on %s",
            decision.rule.name,
            decision.event.tag,
            extra={"rule": decision.rule.name, "event_id": decision.event.id},
        )
        self.dispatcher.submit(decision.rule, decision.event, replay=replay)

    def _context(
        self, event: Event, rule: str, action_id: str, timeout: float, dry_run: bool
    ) -> ActionContext:
        return ActionContext(
            event=event,
            rule=rule,
            action_id=action_id,
            timeout=timeout,
            dry_run=dry_run,
            max_depth=self.config.reactor.max_depth,
            pipeline=self.pipeline,
            jobs=self.jobs,
            resolve_target=self.resolve_target,
            check_gate=self.check_gate,
        )

    #: Set by the master: ``(gate spec, the action's minions) -> why the gate is closed, or None``.
    gate: Callable[[dict[str, Any], list[str]], str | None] | None = None

    async def check_gate(self, spec: dict[str, Any], minions: list[str]) -> str | None:
        if self.gate is None:
            return "no fleet state to check the gate against"
        return self.gate(spec, minions)

    async def tick(self) -> None:
        """Fire ``for`` holds that are due, persist rule state, reload changed rule files."""
        checks = 0
        while True:
            now = self.clock()
            rows = []
            for decision in self.engine.due_holds(now):
                rows.append(
                    (decision.event.id, decision.rule.name, decision.fired, decision.reason, now, None)
                )
                if decision.fired:
                    self._fire(decision)
            self.audit.record_decisions(rows)
            self.audit.flush()
            self.state_store.flush(self.engine.state)
            checks += 1
            if self.config.reactor.watch_rules and checks % 4 == 0 and self.changed_on_disk():
                log.info("rule files changed on disk; reloading")
                self.reload()
                self._mtimes = _mtimes(self.files())
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        await self.dispatcher.close()
        self.audit.flush()
        self.audit.interrupt_unfinished(self.clock())
        self.state_store.flush(self.engine.state)

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
        events = list(self.event_log.iterate(replace(query, newest_first=False)))
        total, fired = len(events), 0
        yield {"replay": replay_id, "total": total, "done": 0, "fired": 0, "dry_run": dry_run}
        for done, stored in enumerate(events, start=1):
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
                        self._fire(decision, replay=replay_id)
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
