"""The action outbox: a firing's action rows, written in the transaction of the event that
decided it, each with an idempotency key that stays the same across retries and restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reactord.protocol.events import Event
from reactord.protocol.ids import derived_id
from reactord.reactor.rules import Rule
from reactord.reactor.rulestate import plain_event
from reactord.store.audit import action_row


def idempotency_key(event_id: str, rule: str, index: int, replay: str | None = None) -> str:
    """The key an action keeps across retries, restarts and dead-letter retries."""
    key = f"{event_id}/{rule}/{index}"
    return f"{key}/replay/{replay}" if replay else key


def action_rows(
    rule: Rule, event: Event, now: float, replay: str | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """New action ids for a firing, and their ``actions`` rows (``ADD_ACTION``).

    An id is derived from the action's idempotency key and its event's arrival: every master
    of a cluster, deciding the same event, names its actions alike (their done records and
    the events a ``fire`` made find them on every master)."""
    when = event.received or now
    ids = [derived_id(when, idempotency_key(event.id, rule.name, spec.index, replay)) for spec in rule.do]
    context = matched_context(event)
    rows = [
        action_row(
            action_id,
            event.id,
            rule.name,
            spec.index,
            spec.kind,
            spec.label_for(event),
            now,
            replay,
            idempotency_key(event.id, rule.name, spec.index, replay),
            context,
        )
        for action_id, spec in zip(ids, rule.do, strict=True)
    ]
    return ids, rows


def matched_context(event: Event) -> str | None:
    """What a rule over several events matched, as its action rows keep it: the id of each
    logged event, the whole of one the rule made (a fleet's summary, tagged ``reactor/fleet/``)."""
    if not event.matched:
        return None
    return json.dumps(
        {
            name: {"event": plain_event(e)} if e.tag.startswith("reactor/fleet/") else {"id": e.id}
            for name, e in event.matched.items()
        },
        sort_keys=True,
    )


def restore_matched(
    event: Event, context: str | None, find_event: Callable[[str], Event | None]
) -> Event | None:
    """``event`` with what its firing matched, from an action row's ``context``; None when a
    matched event is no longer in the log (retention removed it)."""
    if not context:
        return event
    matched: dict[str, Event] = {}
    for name, ref in json.loads(context).items():
        found = Event(**ref["event"]) if "event" in ref else find_event(ref["id"])
        if found is None:
            return None
        matched[name] = found
    return replace(event, matched=matched)
