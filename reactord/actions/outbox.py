"""The action outbox: a firing's action rows, written in the transaction of the event that
decided it, each with an idempotency key that stays the same across retries and restarts."""

from __future__ import annotations

from typing import Any

from reactord.protocol.events import Event
from reactord.protocol.ids import derived_id
from reactord.reactor.rules import Rule
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
        )
        for action_id, spec in zip(ids, rule.do, strict=True)
    ]
    return ids, rows
