"""The rule state's rows (table ``rule_state``): plain values by (kind, rule, key).

Storage knows nothing of rules: the reactor turns its throttles, windows and holds into
plain values and back (``reactord.reactor.rulestate``). Rows are written only as writes for a
transaction the caller owns (``writes``): the transaction of the event that changed them, or
of the tick that fired a hold, so the rule state and the event log never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from reactord.protocol import codec
from reactord.store.database import Database
from reactord.store.eventlog import Writes

#: One change: (kind, rule, key, plain value), the value None for a deleted row.
Change = tuple[str, str, str, Any]
_DELETE = "DELETE FROM rule_state WHERE rule=? AND key=? AND kind=?"
_UPSERT = "INSERT OR REPLACE INTO rule_state VALUES (?, ?, ?, ?)"


class SqliteRuleStore:
    """Rule state rows in the master database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def rows(self) -> Iterator[Change]:
        """Every stored row (at start)."""
        for rule, key, kind, blob in self.db.conn.execute("SELECT rule, key, kind, value FROM rule_state"):
            yield kind, rule, key, codec.unpack(blob, max_size=1 << 30)

    def read(self, kind: str, rule: str, key: str) -> Any:
        """One row's value as stored, or None."""
        row = self.db.conn.execute(
            "SELECT value FROM rule_state WHERE rule=? AND key=? AND kind=?", (rule, key, kind)
        ).fetchone()
        return None if row is None else codec.unpack(row[0], max_size=1 << 30)

    def writes(self, changes: Sequence[Change]) -> Writes:
        """The writes recording ``changes``, for the caller's transaction."""
        deletes = [(rule, key, kind) for kind, rule, key, value in changes if value is None]
        upserts = [
            (rule, key, kind, codec.pack(value)) for kind, rule, key, value in changes if value is not None
        ]
        writes: Writes = []
        if deletes:
            writes.append((_DELETE, deletes))
        if upserts:
            writes.append((_UPSERT, upserts))
        return writes
