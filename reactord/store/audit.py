"""The audit trail: every decision of the reactor, every action it took, and dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reactord.base import jsonable
from reactord.protocol import codec
from reactord.protocol.errors import StorageFull
from reactord.store.database import Database, Writes

_ACTION_COLUMNS = (
    "id, event_id, rule, idx, kind, label, status, attempts, created, started, finished, error, result, jid"
)
#: One row of the action outbox, written with the event that decided it (see ``action_row``).
ADD_ACTION = (
    "INSERT INTO actions (id, event_id, rule, idx, kind, label, status, created, replay, key, context)"
    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)"
)
#: Actions that a stopped master left unfinished: resumed at the next start.
UNFINISHED = ("pending", "running", "failed")
ADD_DECISION = "INSERT INTO decisions (event_id, rule, fired, reason, time, replay) VALUES (?, ?, ?, ?, ?, ?)"
_DEAD_COLUMNS = (
    "id, action_id, event_id, rule, kind, label, params, timeout, retry, error, attempts, created,"
    " status, updated"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    action_id: str
    event_id: str
    rule: str
    kind: str
    label: str
    params: dict[str, Any] | None  # None: the action's templates did not render
    timeout: float
    retry: dict[str, Any]
    error: str
    attempts: int
    created: float
    status: str
    updated: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action_id": self.action_id,
            "event_id": self.event_id,
            "rule": self.rule,
            "kind": self.kind,
            "label": self.label,
            "error": self.error,
            "attempts": self.attempts,
            "created": self.created,
            "status": self.status,
            "updated": self.updated,
            "params": self.params,
        }


def action_row(
    action_id: str,
    event_id: str,
    rule: str,
    idx: int,
    kind: str,
    label: str,
    now: float,
    replay: str | None,
    key: str,
    context: str | None = None,
) -> tuple[Any, ...]:
    return (action_id, event_id, rule, idx, kind, label, now, replay, key, context)


class AuditLog:
    """Writes are buffered and flushed in one transaction (by the reactor's tick, when the
    buffer fills, and before any read), so recording an action costs no transaction of its own.

    A flush that meets a full disk keeps the buffer and tries again at the next flush; reads
    go on with what is stored (``status`` and ``event show`` keep answering meanwhile).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        # In order; an action's updates not yet written are merged into one (its fields dict):
        # a fast action costs one UPDATE, not one per step (params, running, ok).
        self._writes: list[tuple[str, tuple[Any, ...]] | tuple[str, dict[str, Any]]] = []
        self._updates: dict[str, dict[str, Any]] = {}

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        self._writes.append((sql, params))
        if len(self._writes) >= 2000:
            self.try_flush()

    def flush(self) -> None:
        """Write the buffer in one transaction; on a storage fault it stays for the next try."""
        if not self._writes:
            return
        writes, updates = self._writes, self._updates
        self._writes, self._updates = [], {}
        try:
            with self.db.transaction() as conn:
                for sql, params in writes:
                    if isinstance(params, dict):  # an action's merged updates; sql is its id
                        assignments = ", ".join(f"{name}=?" for name in params)
                        conn.execute(f"UPDATE actions SET {assignments} WHERE id=?", (*params.values(), sql))
                    else:
                        conn.execute(sql, params)
        except BaseException:
            self._writes = writes + self._writes
            self._updates = {**updates, **self._updates}
            raise

    def try_flush(self) -> bool:
        """``flush``, but a full disk only leaves the buffer for later (reads go on)."""
        try:
            self.flush()
        except StorageFull:
            return False
        return True

    # -- decisions ------------------------------------------------------------------------------

    def record_decisions(self, rows: Sequence[tuple[str, str, bool, str | None, float, str | None]]) -> None:
        if rows:
            with self.db.transaction() as conn:
                conn.executemany(ADD_DECISION, rows)

    def decisions(self, event_id: str) -> list[dict[str, Any]]:
        """Decisions on the event's row (made when it arrived), then later ones (holds, replays)."""
        self.try_flush()
        row = self.db.conn.execute(
            "SELECT decisions, received FROM events WHERE id=?", (event_id,)
        ).fetchone()
        on_arrival = []
        if row is not None and row[0]:
            on_arrival = [
                {"rule": rule, "fired": fired, "reason": reason, "time": row[1]}
                for rule, fired, reason in codec.unpack(row[0], max_size=1 << 30)
            ]
        rows = self.db.conn.execute(
            "SELECT rule, fired, reason, time, replay FROM decisions WHERE event_id=? ORDER BY rowid",
            (event_id,),
        ).fetchall()
        return on_arrival + [
            {
                "rule": r[0],
                "fired": bool(r[1]),
                "reason": r[2],
                "time": r[3],
                **({"replay": r[4]} if r[4] else {}),
            }
            for r in rows
        ]

    # -- actions --------------------------------------------------------------------------------

    def add_action(
        self,
        action_id: str,
        event_id: str,
        rule: str,
        idx: int,
        kind: str,
        label: str,
        now: float,
        params: dict[str, Any] | None,
        replay: str | None,
    ) -> None:
        self._write(
            "INSERT INTO actions (id, event_id, rule, idx, kind, label, status, created, params, replay)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (action_id, event_id, rule, idx, kind, label, now, jsonable.dumps(params), replay),
        )

    def intent_writes(
        self,
        actions: list[tuple[Any, ...]],
        decisions: Sequence[tuple[str, str, bool, str | None, float, str | None]] = (),
    ) -> Writes:
        """Action rows (``action_row``) and later decisions as writes for the transaction of
        the event (or the tick) that decided them: the action outbox."""
        writes: Writes = []
        if decisions:
            writes.append((ADD_DECISION, list(decisions)))
        if actions:
            writes.append((ADD_ACTION, actions))
        return writes

    def add_actions(self, rows: list[tuple[Any, ...]]) -> None:
        """Write action rows (``action_row``) now, in a transaction of their own."""
        if rows:
            with self.db.transaction() as conn:
                conn.executemany(ADD_ACTION, rows)

    def action_key(self, action_id: str) -> str | None:
        self.try_flush()
        row = self.db.conn.execute("SELECT key FROM actions WHERE id=?", (action_id,)).fetchone()
        return row[0] if row and row[0] else None

    def action_status(self, action_id: str) -> str | None:
        self.try_flush()
        row = self.db.conn.execute("SELECT status FROM actions WHERE id=?", (action_id,)).fetchone()
        return row[0] if row else None

    def action_event(self, action_id: str) -> str | None:
        """The id of the event an action is for."""
        row = self.db.conn.execute("SELECT event_id FROM actions WHERE id=?", (action_id,)).fetchone()
        return row[0] if row else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Actions a stopped master left pending, running or between tries, oldest first."""
        self.try_flush()
        marks = ",".join("?" * len(UNFINISHED))
        rows = self.db.conn.execute(
            f"SELECT id, event_id, rule, idx, kind, label, status, replay, context FROM actions"
            f" WHERE status IN ({marks}) ORDER BY created, id",
            UNFINISHED,
        ).fetchall()
        names = ("id", "event_id", "rule", "idx", "kind", "label", "status", "replay", "context")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def update_action(self, action_id: str, **fields: Any) -> None:
        if "result" in fields:
            fields["result"] = jsonable.dumps(fields["result"])
        pending = self._updates.get(action_id)
        if pending is not None:
            pending.update(fields)  # written where the first one stood, with the later values
            return
        self._updates[action_id] = dict(fields)
        self._writes.append((action_id, self._updates[action_id]))
        if len(self._writes) >= 2000:
            self.try_flush()

    def actions_for(self, event_id: str) -> list[dict[str, Any]]:
        self.try_flush()
        rows = self.db.conn.execute(
            f"SELECT {_ACTION_COLUMNS}, replay FROM actions WHERE event_id=? ORDER BY created, idx",
            (event_id,),
        ).fetchall()
        names = [*_ACTION_COLUMNS.split(", "), "replay"]
        out = []
        for row in rows:
            item = dict(zip(names, row, strict=True))
            item["result"] = jsonable.loads(item["result"])
            out.append({k: v for k, v in item.items() if v is not None})
        return out

    def action_params(self, action_id: str) -> dict[str, Any] | None:
        self.try_flush()
        row = self.db.conn.execute("SELECT params FROM actions WHERE id=?", (action_id,)).fetchone()
        return jsonable.loads(row[0]) if row else None

    # -- dead letters ---------------------------------------------------------------------------

    def add_dead(self, letter: DeadLetter) -> None:
        self._write(
            f"INSERT INTO deadletters ({_DEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                letter.id,
                letter.action_id,
                letter.event_id,
                letter.rule,
                letter.kind,
                letter.label,
                jsonable.dumps(letter.params),
                letter.timeout,
                jsonable.dumps(letter.retry),
                letter.error,
                letter.attempts,
                letter.created,
                letter.status,
                letter.updated,
            ),
        )

    def dead_letters(self, status: str | None = "open") -> list[DeadLetter]:
        self.try_flush()
        where, params = ("WHERE status=?", (status,)) if status else ("", ())
        rows = self.db.conn.execute(
            f"SELECT {_DEAD_COLUMNS} FROM deadletters {where} ORDER BY id", params
        ).fetchall()
        return [_dead(r) for r in rows]

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        self.try_flush()
        row = self.db.conn.execute(
            f"SELECT {_DEAD_COLUMNS} FROM deadletters WHERE id=?", (letter_id,)
        ).fetchone()
        return _dead(row) if row else None

    def update_dead(self, letter_id: str, *, status: str, error: str, attempts: int, now: float) -> None:
        self._write(
            "UPDATE deadletters SET status=?, error=?, attempts=?, updated=? WHERE id=?",
            (status, error, attempts, now, letter_id),
        )

    def prune(self, before: float) -> int:
        """Forget decisions and finished actions older than ``before``, and resolved dead letters."""
        self.flush()
        with self.db.writing() as conn:
            removed = conn.execute("DELETE FROM decisions WHERE time < ?", (before,)).rowcount
            removed += conn.execute(
                "DELETE FROM actions WHERE created < ? AND status NOT IN ('pending', 'running', 'failed')",
                (before,),
            ).rowcount
            removed += conn.execute(
                "DELETE FROM deadletters WHERE status='resolved' AND updated < ?", (before,)
            ).rowcount
        return int(removed)

    def count_dead(self) -> int:
        self.try_flush()
        return int(self.db.conn.execute("SELECT COUNT(*) FROM deadletters WHERE status='open'").fetchone()[0])


def _dead(row: tuple[Any, ...]) -> DeadLetter:
    return DeadLetter(
        id=row[0],
        action_id=row[1],
        event_id=row[2],
        rule=row[3],
        kind=row[4],
        label=row[5],
        params=jsonable.loads(row[6]),
        timeout=row[7],
        retry=jsonable.loads(row[8]),
        error=row[9],
        attempts=row[10],
        created=row[11],
        status=row[12],
        updated=row[13],
    )
