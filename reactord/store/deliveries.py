"""Webhook deliveries already logged, by the key their sender gave (table ``webhook_deliveries``).

A sender that retries (CloudEvents ``source`` + ``id``, GitHub's ``X-GitHub-Delivery``, an
Alertmanager alert's fingerprint + status + ``startsAt``, an ``Idempotency-Key``) is answered
with the events of its first delivery, and nothing is logged again. The rows are written in
the transaction of the events they name (``writes``), so a crash cannot keep one without the
other, and they are kept for ``window`` seconds: a delivery sent again later is new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from reactord.store.database import Database
from reactord.store.eventlog import Writes

_INSERT = "INSERT OR REPLACE INTO webhook_deliveries (endpoint, key, ids, received) VALUES (?, ?, ?, ?)"
_CHUNK = 500  # keys per lookup: well under SQLite's bound on parameters
#: Keys kept at most, whatever the window: the oldest go first (about 200 bytes each).
MAX_KEYS = 1_000_000


class Deliveries:
    """The dedupe keys of every webhook endpoint; ``window`` 0 turns deduplication off."""

    def __init__(self, db: Database, window: float) -> None:
        self.db = db
        self.window = window

    def known(self, endpoint: str, keys: Sequence[str], now: float) -> dict[str, list[str]]:
        """The keys of ``endpoint`` delivered within the window, each with its events' ids."""
        if not self.window or not keys:
            return {}
        since = now - self.window
        found: dict[str, list[str]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = self.db.conn.execute(
                "SELECT key, ids FROM webhook_deliveries WHERE endpoint=? AND received>=?"
                f" AND key IN ({','.join('?' * len(chunk))})",
                (endpoint, since, *chunk),
            )
            found.update((key, json.loads(ids)) for key, ids in rows)
        return found

    def writes(self, endpoint: str, delivered: dict[str, list[str]], now: float) -> Writes:
        """The rows recording ``delivered`` (key -> event ids), for the events' own transaction."""
        if not self.window or not delivered:
            return []
        rows = [(endpoint, key, json.dumps(ids), now) for key, ids in delivered.items()]
        return [(_INSERT, rows)]

    def prune(self, now: float, max_keys: int = MAX_KEYS) -> int:
        """Forget the keys older than the window, then the oldest beyond ``max_keys`` (with the
        master's retention, every minute): a sender within its budget cannot fill the disk."""
        with self.db.writing() as conn:
            removed = conn.execute(
                "DELETE FROM webhook_deliveries WHERE received < ?", (now - self.window,)
            ).rowcount
            excess = conn.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0] - max_keys
            if excess > 0:
                removed += conn.execute(
                    "DELETE FROM webhook_deliveries WHERE (endpoint, key) IN (SELECT endpoint, key"
                    " FROM webhook_deliveries ORDER BY received LIMIT ?)",
                    (excess,),
                ).rowcount
        return int(removed)
