"""After a crash: the firings the last run of the master left unfinished, found in the outbox.

A firing is resumed where it can still be: its event is in the log and its rule is loaded
with the same actions; it starts at its first unfinished action, which is told it resumes
(a ``fire`` looks for its event, a ``run`` for its job, before acting). The others are
marked ``interrupted`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reactord.actions.outbox import restore_matched
from reactord.actions.queue import Firing
from reactord.protocol.events import Event
from reactord.reactor.rules import Rule
from reactord.store.interfaces import ActionLog


def unfinished(
    audit: ActionLog,
    rules: Mapping[str, Rule],
    find_event: Callable[[str], Event | None],
    clock: Callable[[], float],
    keep: Callable[[Event], bool] | None = None,
) -> tuple[list[Firing], int]:
    """The firings to queue again, and how many unfinished firings could not be resumed (their
    actions are marked ``interrupted``). With ``keep``, only the firings of the events it
    keeps are looked at."""
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for row in audit.unfinished():
        groups.setdefault((row["event_id"], row["rule"], row["replay"]), []).append(row)
    firings = []
    skipped = 0
    for (event_id, rule_name, replay), rows in groups.items():
        if keep is not None:
            event = find_event(event_id)
            if event is not None and not keep(event):
                skipped += 1
                continue
        firing, why = _resumable(audit, find_event, event_id, rules.get(rule_name), replay, rows)
        if firing is None:
            for row in rows:
                audit.update_action(row["id"], status="interrupted", finished=clock(), error=why)
            continue
        firings.append(firing)
    return firings, len(groups) - len(firings) - skipped


def _resumable(
    audit: ActionLog,
    find_event: Callable[[str], Event | None],
    event_id: str,
    rule: Rule | None,
    replay: str | None,
    rows: list[dict[str, Any]],
) -> tuple[Firing | None, str]:
    if any(r["idx"] < 0 for r in rows):
        return None, "the master stopped during this retry of a dead letter; retry it again"
    if rule is None:
        return None, "the master stopped before it ran, and its rule is no longer loaded"
    event = find_event(event_id)
    if event is None:
        return None, "the master stopped before it ran, and retention removed its event"
    event = restore_matched(event, rows[0].get("context"), find_event)
    if event is None:
        return None, "the master stopped before it ran, and retention removed an event it matched"
    ids: list[str | None] = [None] * len(rule.do)
    for action in audit.actions_for(event_id):
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
