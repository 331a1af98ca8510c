"""The operations the control socket offers, each a small coroutine over master parts."""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from reactord import __version__
from reactord.base.batching import parse_batch
from reactord.base.errors import ControlError, KeyStoreError, TargetError
from reactord.control import fleet_ops
from reactord.keystore import ACCEPTED, PENDING, REJECTED, STATES
from reactord.protocol.errors import StorageFull, TagError
from reactord.protocol.events import INT64_MAX, INT64_MIN, Event
from reactord.protocol.ids import id_time, is_id
from reactord.protocol.keys import fingerprint
from reactord.protocol.localsock import Handler, Stream
from reactord.protocol.messages import MAX_JOB_SECONDS, valid_function_name
from reactord.protocol.tags import RESERVED_PREFIX, validate_pattern
from reactord.reactor.offline import EventFileError, event_from_json
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.jobstore import return_public

if TYPE_CHECKING:
    from reactord.master import Master


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """A request argument of the given type, or a ``bad_request`` error naming it."""
    if name not in args or args[name] is None:
        if default is ...:
            raise ControlError(f"missing argument {name!r}", "bad_request")
        return default
    value = args[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in kinds)
        raise ControlError(f"argument {name!r} must be {names}", "bad_request")
    if isinstance(value, float) and not math.isfinite(value):
        raise ControlError(f"argument {name!r} must be a finite number", "bad_request")
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ControlError(f"argument {name!r} is out of range", "bad_request")
    return value


#: Events sent between two turns of the master's loop while listing (about a page of the log).
_BREATHE = 64


async def newest_events(log: EventLog, query: EventQuery) -> AsyncIterator[Event]:
    """The newest ``query.limit`` events matching ``query`` (0: all of them), oldest first.

    Nothing but a page of the log is held, however many events match. A first pass, newest
    first, keeps only the ids where the answer starts and ends (it reads one event when the
    limit is 0); the second reads forward from the start and stops at the end, fixed before
    anything is sent, so events logged meanwhile never make a listing of everything endless.
    """
    first = last = None
    for count, event in enumerate(log.iterate(replace(query, newest_first=True, limit=query.limit or 1)), 1):
        last, first = last or event.id, event.id
        if count % _BREATHE == 0:
            await asyncio.sleep(0)
    if first is None or last is None:
        return
    since = id_time(first) if query.limit and is_id(first) else query.since
    for count, event in enumerate(log.iterate(replace(query, newest_first=False, limit=0, since=since)), 1):
        if event.id > last:
            return
        if not query.limit or event.id >= first:
            yield event
        if count % _BREATHE == 0:
            await asyncio.sleep(0)


def handlers(master: Master) -> dict[str, Handler]:
    keystore, nodes, registry = master.keystore, master.nodes, master.registry

    async def ping(args: dict[str, Any]) -> Any:
        return {"version": __version__, "uptime": time.time() - master.started}

    async def status(args: dict[str, Any]) -> Any:
        by_presence: dict[str, int] = {"up": 0, "suspect": 0, "down": 0}
        for record in registry.all():
            by_presence[record.presence] = by_presence.get(record.presence, 0) + 1
        return {
            "version": __version__,
            "uptime": time.time() - master.started,
            "master_finger": fingerprint(master.keys.public),
            "minions": by_presence,
            "keys": {state: len(ids) for state, ids in keystore.listing().items()},
            "database_bytes": master.db.size(),
            "events_logged": master.event_log.count(),
            "events_per_second": round(master.stats.event_rate.per_second(time.time()), 2),
            "rules_loaded": len(master.reactor.engine.rules.rules),
            "actions_in_flight": master.reactor.dispatcher.in_flight,
            "actions": {
                "queued": master.reactor.dispatcher.queued,
                "running": master.reactor.dispatcher.running,
                "queued_bytes": master.reactor.dispatcher.queued_bytes,
                "saturated": master.reactor.dispatcher.saturated,
            },
            "storage": {
                "ok": master.pipeline.storage_error is None,
                "error": master.pipeline.storage_error,
                "since": master.pipeline.storage_since if master.pipeline.storage_error else None,
                "held_events": master.pipeline.held,
            },
            "budget_refused": dict(sorted(master.budgets.refused.items())),
            "dead_letters": master.reactor.audit.count_dead(),
            "counters": master.stats.snapshot(),
        }

    async def key_list(args: dict[str, Any]) -> Any:
        return keystore.listing()

    def _keys_named(args: dict[str, Any], states: tuple[str, ...]) -> list[str]:
        """The ids a key operation names: ``ids`` (a list), or ``match`` (an id or a glob) among
        the keys in ``states``; an exact id is taken whatever its state (the store checks it)."""
        if "ids" in args:
            ids = _arg(args, "ids", list)
            if not all(isinstance(i, str) for i in ids):
                raise ControlError("argument 'ids' must be a list of ids", "bad_request")
            return list(dict.fromkeys(ids))
        pattern = _arg(args, "match", str, None) or _arg(args, "id", str)
        listing = keystore.listing()
        if not any(c in pattern for c in "*?["):
            return [pattern]
        return sorted(
            {m for state in states for m in listing.get(state, []) if fnmatch.fnmatchcase(m, pattern)}
        )

    async def _key_op(args: dict[str, Any], states: tuple[str, ...], op: Any, done_key: str) -> Any:
        ids = keystore.listing()[PENDING] if _arg(args, "all", bool, False) else _keys_named(args, states)
        if _arg(args, "dry_run", bool, False):
            return {"matched": ids}
        done = []
        for minion_id in ids:
            try:
                op(minion_id)
            except KeyStoreError as exc:
                if len(ids) == 1:
                    raise ControlError(str(exc)) from exc
                continue  # changed meanwhile (accepted elsewhere, deleted): the others go on
            done.append(minion_id)
        return {done_key: done}

    async def key_accept(args: dict[str, Any]) -> Any:
        states = (PENDING, REJECTED) if _arg(args, "include_rejected", bool, False) else (PENDING,)
        return await _key_op(args, states, nodes.accept, "accepted")

    async def key_reject(args: dict[str, Any]) -> Any:
        states = (PENDING, ACCEPTED) if _arg(args, "include_accepted", bool, False) else (PENDING,)
        return await _key_op(args, states, nodes.reject, "rejected")

    async def key_delete(args: dict[str, Any]) -> Any:
        return await _key_op(args, STATES, nodes.delete, "deleted")

    async def key_finger(args: dict[str, Any]) -> Any:
        minion_id = _arg(args, "id", str, None)
        entries = keystore.entries(minion_id)
        if minion_id is not None and not entries:
            raise ControlError(f"no key for {minion_id!r}")
        return {
            "master": fingerprint(master.keys.public),
            "minions": [{"id": e.id, "state": e.state, "finger": e.finger} for e in entries],
        }

    async def minions(args: dict[str, Any]) -> Any:
        return [r.public() for r in registry.all()]

    async def run(args: dict[str, Any]) -> Any:
        target = _arg(args, "target", str)
        target_type = _arg(args, "target_type", str, "glob")
        fun = _arg(args, "fun", str)
        if not valid_function_name(fun):
            raise ControlError(f"bad function name {fun!r} (expected module.function)", "bad_request")
        timeout = float(_arg(args, "timeout", (int, float), master.config.job_timeout))
        if not 0 < timeout <= MAX_JOB_SECONDS:
            raise ControlError(f"timeout must be between 0 and {MAX_JOB_SECONDS:g} seconds", "bad_request")
        batch = None
        if _arg(args, "batch", (str, int), None) is not None:
            try:
                batch = parse_batch(
                    args["batch"],
                    wait=float(_arg(args, "batch_wait", (int, float), 0.0)),
                    failhard=_arg(args, "failhard", bool, False),
                )
            except ValueError as exc:
                raise ControlError(str(exc), "bad_request") from exc
        try:
            matched = master.resolve_target(target, target_type)
        except TargetError as exc:
            raise ControlError(str(exc), "bad_request") from exc
        if not matched:
            raise ControlError(f"no accepted minion matches {target_type} target {target!r}", "no_match")
        try:
            job = master.jobs.start(
                matched,
                fun,
                _arg(args, "args", list, []),
                _arg(args, "kwargs", dict, {}),
                timeout=timeout,
                target=target,
                target_type=target_type,
                batch=batch,
            )
        except StorageFull as exc:
            raise ControlError(f"the job was not started: {exc}", "failed") from exc
        if _arg(args, "async", bool, False):
            master.jobs.launch(job)
            return {"jid": job.jid, "minions": matched, "batch": job.batch}
        if not _arg(args, "progress", bool, False):
            return (await master.jobs.follow(job)).public()
        reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # at most two per minion
        task = master.jobs.launch(job, reports.put_nowait)  # goes on if the client goes away

        async def progress() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "job", "jid": job.jid, "minions": matched, "batch": job.batch}
            while True:
                getter = asyncio.ensure_future(reports.get())
                try:
                    await asyncio.wait([getter, task], return_when=asyncio.FIRST_COMPLETED)
                finally:  # also when the client went away: the job goes on, this reader does not
                    got = getter.done()
                    if not got:
                        getter.cancel()
                if got:
                    yield getter.result()
                    continue
                while not reports.empty():
                    yield reports.get_nowait()
                yield {"type": "done", **task.result().public()}
                return

        return Stream(progress())

    async def jobs_list(args: dict[str, Any]) -> Any:
        recent = master.job_store.recent(_arg(args, "limit", int, 50))
        counts = master.job_store.count_returns([j.jid for j in recent])
        return [{**j.public(), "returned": counts.get(j.jid, 0)} for j in recent]

    async def jobs_show(args: dict[str, Any]) -> Any:
        jid = _arg(args, "jid", str)
        wait = float(_arg(args, "wait", (int, float), 0.0))
        if not 0 <= wait <= MAX_JOB_SECONDS:
            raise ControlError(f"wait must be between 0 and {MAX_JOB_SECONDS:g} seconds", "bad_request")
        if master.job_store.get(jid) is None:
            raise ControlError(f"no job {jid!r}", "not_found")
        if wait:
            await master.jobs.wait(jid, wait)
        job = master.job_store.get(jid)
        assert job is not None
        returns = master.job_store.returns(jid)
        summary = job.summary or {}

        def shown(minion_id: str) -> dict[str, Any] | None:
            if minion_id in returns:
                return return_public(returns[minion_id])
            if minion_id in summary.get("not_run", []):
                error = f"not run: the batch stopped after {summary.get('stopped_by')} failed"
                return {"success": False, "return": None, "retcode": 1, "error": error, "not_run": True}
            if minion_id in summary.get("no_return", []):
                return {"success": False, "return": None, "retcode": 1, "error": "no return", "lost": True}
            return None  # still running

        return {
            **job.public(),
            "finished": job.summary is not None or all(mid in returns for mid in job.minions),
            "returns": {mid: shown(mid) for mid in job.minions},
        }

    async def event_fire(args: dict[str, Any]) -> Any:
        tag = _arg(args, "tag", str)
        data = _arg(args, "data", dict, {})
        if tag.startswith(RESERVED_PREFIX):
            raise ControlError(f"tags under {RESERVED_PREFIX} belong to the master", "bad_request")
        try:
            event = master.pipeline.emit(tag, data, source="cli")
        except TagError as exc:
            raise ControlError(str(exc), "bad_request") from exc
        return {"id": event.id, "tag": event.tag}

    def _query(args: dict[str, Any], default_limit: int) -> EventQuery:
        tag = _arg(args, "tag", str, None)
        if tag is not None:
            try:
                validate_pattern(tag)
            except TagError as exc:
                raise ControlError(str(exc), "bad_request") from exc
        return EventQuery(
            tag=tag,
            source=_arg(args, "source", str, None),
            since=_arg(args, "since", (int, float), None),
            until=_arg(args, "until", (int, float), None),
            limit=_arg(args, "limit", int, default_limit),
            newest_first=_arg(args, "newest_first", bool, True),
        )

    async def event_list(args: dict[str, Any]) -> Any:
        events = newest_events(master.event_log, _query(args, 100))
        return Stream(e.public() | {"received": e.received} async for e in events)

    def _stored(event_id: str) -> Event:
        event = master.event_log.get(event_id)
        if event is None:
            raise ControlError(f"no event {event_id!r} in the log", "not_found")
        return event

    def _chain(event: Event, depth: int) -> dict[str, Any]:
        """The event, what the reactor decided and did for it, and what it caused (recursively)."""
        audit = master.reactor.audit
        jobs = []
        for job in master.job_store.caused_by(event.id):
            returns = master.job_store.returns(job.jid)
            jobs.append({**job.public(), "returns": {m: return_public(r) for m, r in returns.items()}})
        caused = master.event_log.caused_by(event.id)
        for entry in jobs:
            caused += master.event_log.caused_by(entry["jid"])  # events a job emitted on its minion
        return {
            **event.public(),
            "received": event.received,
            "decisions": audit.decisions(event.id),
            "actions": audit.actions_for(event.id),
            "jobs": jobs,
            "caused": [_chain(e, depth + 1) if depth < 10 else e.public() for e in caused],
        }

    async def event_show(args: dict[str, Any]) -> Any:
        return _chain(_stored(_arg(args, "id", str)), 0)

    async def event_replay(args: dict[str, Any]) -> Any:
        query = _query(args, 0)
        return Stream(master.reactor.replay(query, _arg(args, "dry_run", bool, False)))

    async def rules_list(args: dict[str, Any]) -> Any:
        engine = master.reactor.engine
        return [
            {
                "name": r.name,
                "file": r.file,
                "line": r.line,
                "on": list(r.on),
                "enabled": r.enabled,
                "description": r.description,
                "actions": [a.label for a in r.do],
                "fired": engine.fire_counts.get(r.name, 0),
            }
            for r in engine.rules.rules
        ]

    async def rules_reload(args: dict[str, Any]) -> Any:
        ok, message = master.reactor.reload()
        if not ok:
            raise ControlError(f"rules not reloaded (the running set stays): {message}", "invalid_rules")
        return {"reloaded": message}

    async def rules_explain(args: dict[str, Any]) -> Any:
        if "event" in args:
            try:
                event = event_from_json(_arg(args, "event", dict), "event", time.time())
            except EventFileError as exc:
                raise ControlError(str(exc), "bad_request") from exc
            recorded: list[dict[str, Any]] | None = None
        else:
            event = _stored(_arg(args, "id", str))
            recorded = master.reactor.recorded(event)
        now = master.reactor.explain(event, stored=recorded is not None)
        return {"event": event.public(), "recorded": recorded, "now": now}

    async def dead_list(args: dict[str, Any]) -> Any:
        status = _arg(args, "status", str, "open")
        return [d.public() for d in master.reactor.audit.dead_letters(None if status == "all" else status)]

    async def dead_retry(args: dict[str, Any]) -> Any:
        audit = master.reactor.audit
        if _arg(args, "all", bool, False):
            letters = audit.dead_letters("open")
        else:
            letter = audit.dead_letter(_arg(args, "id", str))
            if letter is None:
                raise ControlError(f"no dead letter {args.get('id')!r}", "not_found")
            letters = [letter]
        results = []
        for letter in letters:
            event = master.event_log.get(letter.event_id) or Event(
                id=letter.event_id, tag="reactor/deadletter", source="master", time=time.time(), data={}
            )
            ok, error = await master.reactor.dispatcher.retry_dead(letter, event)
            results.append({"id": letter.id, "ok": ok, **({"error": error} if error else {})})
        return results

    async def bus_probe(args: dict[str, Any]) -> Any:
        master.bus.probe(_arg(args, "token", str))
        return {"bus": str(master.config.bus_path)}

    return {
        **fleet_ops.handlers(master, _arg),
        "ping": ping,
        "event.fire": event_fire,
        "event.list": event_list,
        "event.show": event_show,
        "event.replay": event_replay,
        "rules.list": rules_list,
        "rules.reload": rules_reload,
        "rules.explain": rules_explain,
        "deadletters.list": dead_list,
        "deadletters.retry": dead_retry,
        "bus.probe": bus_probe,
        "status": status,
        "key.list": key_list,
        "key.accept": key_accept,
        "key.reject": key_reject,
        "key.delete": key_delete,
        "key.finger": key_finger,
        "minions": minions,
        "run": run,
        "jobs.list": jobs_list,
        "jobs.show": jobs_show,
    }
