"""``reactord cluster import``: a single master's state copied into a fresh cluster.

What is copied: the minion keys (every state), the latest event of every (source, tag) (the
fleet state) and the events of the last ``since`` seconds, and the rule state (throttles,
windows, holds). Events go into the event stream as import records: every master logs them
and builds its fleet state from them, none decides them again (their actions ran on the
single master). Only into a fresh cluster: an event stream that holds anything is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reactord.base.config import MasterConfig
from reactord.base.errors import ClusterError
from reactord.cluster import records
from reactord.cluster.engine import Engine, Layout, connect
from reactord.cluster.node import key_value
from reactord.cluster.subjects import EVENTS_STREAM, KEYS_BUCKET, kv_key
from reactord.keystore import KeyStore
from reactord.protocol.events import Event
from reactord.store.database import Database
from reactord.store.eventlog import EventLog, EventQuery
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable

log = logging.getLogger("reactord.cluster")

#: Events per import record (a record stays well under the engine's payload limit).
CHUNK = 256
IMPORT_SUBJECT = "rd.ev.0.=import"


@dataclass(frozen=True, slots=True)
class Imported:
    keys: int
    events: int
    rule_rows: int

    def public(self) -> dict[str, int]:
        return {"keys": self.keys, "events": self.events, "rule_state_rows": self.rule_rows}


def _events(db: Database, since: float) -> list[Event]:
    """The fleet state's events, then the events received since ``since``, each once, in
    id (arrival) order."""
    state = StateTable(db).current()
    recent = list(EventLog(db).iterate(EventQuery(since=since, limit=0, newest_first=False)))
    by_id = {e.id: e for e in (*state, *recent)}
    return [by_id[i] for i in sorted(by_id)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def import_single(
    source: MasterConfig, target: MasterConfig, since: float, token: str | None
) -> Imported:
    """Copy ``source``'s state (a single master's config) into ``target``'s cluster."""
    settings = target.cluster
    engine = await connect(
        settings.servers,
        token=token,
        credentials=settings.credentials,
        timeout=settings.connect_timeout,
        name="reactord-import",
    )
    try:
        await engine.check_engine()
        layout = Layout(settings.partitions, settings.lease_ttl, settings.replicas, settings.duplicate_window)
        await engine.ensure_streams(layout)
        held = await engine.last_seq(EVENTS_STREAM)
        if held:
            raise ClusterError(
                f"the cluster is not fresh: its event stream holds {held} records;"
                " import only into a new cluster"
            )
        return await _copy(engine, source, since)
    finally:
        await engine.close()


async def _copy(engine: Engine, source: MasterConfig, since: float) -> Imported:
    if not source.database.exists():
        raise ClusterError(f"no database at {source.database} (is {source.path} the single master's config?)")
    db = Database(source.database, MIGRATIONS)
    try:
        keystore = KeyStore(source.pki_dir)
        keys = await engine.bucket(KEYS_BUCKET)
        ids = sorted({i for listed in keystore.listing().values() for i in listed})
        for minion_id in ids:
            await keys.put(kv_key(minion_id), key_value(keystore.states(minion_id)))
        events = _events(db, since)
        for chunk in _chunks(events, CHUNK):
            payload = records.pack_events(chunk, tracked=False, imported=True)
            await engine.publish(IMPORT_SUBJECT, payload, f"import:{chunk[0].id}:{chunk[-1].id}")
        rows = list(SqliteRuleStore(db).rows())
        for chunk in _chunks(rows, 1000):
            await engine.publish(
                IMPORT_SUBJECT, records.pack_rule_rows(chunk), f"import-rules:{chunk[0][1]}:{len(rows)}"
            )
    finally:
        db.close()
    log.info("cluster import: %d keys, %d events, %d rule state rows", len(ids), len(events), len(rows))
    return Imported(len(ids), len(events), len(rows))
