"""The backends the storage contracts run against.

Each backend opens (or reopens: a restart) every store at a folder. The embedded master's
is SQLite plus key files (cluster mode uses it too, as each master's replica of the stream);
another backend joins by adding one entry to ``BACKENDS``, and every contract test then runs
against it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reactord.keystore import KeyStore as FileKeyStore
from reactord.store import interfaces as i
from reactord.store.audit import AuditLog
from reactord.store.database import Database
from reactord.store.eventlog import EventLog as SqliteEventLog
from reactord.store.minions import MinionRegistry
from reactord.store.rulestore import SqliteRuleStore
from reactord.store.schema import MIGRATIONS
from reactord.store.statetable import StateTable


@dataclass
class Stores:
    """One backend's stores, open at one folder."""

    events: i.EventLog
    fleet: i.FleetState
    rules: i.RuleStore
    actions: i.ActionLog
    presence: i.Presence
    keys: i.KeyStore
    ownership: i.Ownership
    close: Callable[[], None]


def embedded(root: Path) -> Stores:
    db = Database(root / "master.db", MIGRATIONS)
    return Stores(
        events=SqliteEventLog(db),
        fleet=StateTable(db),
        rules=SqliteRuleStore(db),
        actions=AuditLog(db),
        presence=MinionRegistry(db),
        keys=FileKeyStore(root / "pki"),
        ownership=i.EmbeddedOwnership(),
        close=db.close,
    )


#: name -> open(folder): the implementations every contract runs against.
BACKENDS: dict[str, Callable[[Path], Stores]] = {"embedded": embedded}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Stores]]:
    """``open()`` gives the stores at this test's folder; call it again after ``close()`` to
    restart. Whatever is still open at the end is closed."""
    opened: list[Stores] = []

    def open_() -> Stores:
        stores = BACKENDS[request.param](tmp_path)
        opened.append(stores)
        return stores

    yield open_
    for stores in opened:
        stores.close()  # closing twice is allowed
