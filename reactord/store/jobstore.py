"""Jobs and their returns, as stored by the master."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reactord.base import jsonable
from reactord.protocol.messages import Return
from reactord.store.database import Database, Writes

_JOB_COLUMNS = (
    "jid, fun, args, kwargs, target, target_type, minions, created, timeout, origin, causation, depth,"
    " action, batch, summary"
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    jid: str
    fun: str
    args: list[Any]
    kwargs: dict[str, Any]
    target: str
    target_type: str
    minions: list[str]
    created: float
    timeout: float
    origin: str
    causation: str | None = None
    depth: int = 0
    action: str | None = None  # the rule action that started it, if one did
    batch: dict[str, Any] | None = None  # {size | percent, wait, failhard} of a batched job
    summary: dict[str, Any] | None = None  # written when the job has ended (see jobs.summarize)

    def public(self) -> dict[str, Any]:
        return {
            "jid": self.jid,
            "fun": self.fun,
            "args": self.args,
            "kwargs": self.kwargs,
            "target": self.target,
            "target_type": self.target_type,
            "minions": self.minions,
            "created": self.created,
            "timeout": self.timeout,
            "origin": self.origin,
            "causation": self.causation,
            "batch": self.batch,
            "summary": self.summary,
        }


def return_public(ret: Return) -> dict[str, Any]:
    out: dict[str, Any] = {
        "success": ret.success,
        "return": ret.ret,
        "retcode": ret.retcode,
        "started": ret.started,  # the minion's clock: when it began and ended the function
        "finished": ret.finished,
    }
    if ret.error:
        out["error"] = ret.error
    return out


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, job: JobRecord) -> None:
        with self.db.writing() as conn:
            for sql, rows in self.add_writes(job):
                conn.executemany(sql, rows)

    def add_writes(self, job: JobRecord) -> Writes:
        """The job's row as writes for the transaction of its ``reactor/job/<jid>/new`` event."""
        row = (
            job.jid,
            job.fun,
            jsonable.dumps(job.args),
            jsonable.dumps(job.kwargs),
            job.target,
            job.target_type,
            jsonable.dumps(job.minions),
            job.created,
            job.timeout,
            job.origin,
            job.causation,
            job.depth,
            job.action,
            None if job.batch is None else jsonable.dumps(job.batch),
            None if job.summary is None else jsonable.dumps(job.summary),
        )
        return [
            (f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [row])
        ]

    def finish(self, jid: str, summary: dict[str, Any]) -> None:
        """Record how a job ended (its summary); the job is then finished."""
        with self.db.writing() as conn:
            conn.execute("UPDATE jobs SET summary=? WHERE jid=?", (jsonable.dumps(summary), jid))

    def latest_for(self, action_id: str) -> JobRecord | None:
        """The last job a rule action started (how a resumed action knows it already ran)."""
        row = self.db.conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE action=? ORDER BY jid DESC LIMIT 1", (action_id,)
        ).fetchone()
        return _job(row) if row else None

    def get(self, jid: str) -> JobRecord | None:
        row = self.db.conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE jid=?",
            (jid,),
        ).fetchone()
        return _job(row) if row else None

    def caused_by(self, event_id: str) -> list[JobRecord]:
        rows = self.db.conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE causation=? ORDER BY jid",
            (event_id,),
        ).fetchall()
        return [_job(r) for r in rows]

    def recent(self, limit: int = 50) -> list[JobRecord]:
        rows = self.db.conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY jid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_job(r) for r in rows]

    def add_return(self, ret: Return, received: float) -> bool:
        """Store a return once; False when this (jid, id) was already stored."""
        with self.db.writing() as conn:
            ((sql, rows),) = self.return_writes(ret, received)
            cur = conn.execute(sql, rows[0])
        return cur.rowcount == 1

    def has_return(self, jid: str, minion_id: str) -> bool:
        return (
            self.db.conn.execute("SELECT 1 FROM returns WHERE jid=? AND id=?", (jid, minion_id)).fetchone()
            is not None
        )

    def return_writes(self, ret: Return, received: float) -> Writes:
        """A return's row (stored once) as writes for the transaction of its
        ``reactor/job/<jid>/ret/<id>`` event."""
        row = (
            ret.jid,
            ret.id,
            int(ret.success),
            ret.retcode,
            jsonable.dumps(ret.ret),
            ret.error,
            ret.started,
            ret.finished,
            received,
        )
        return [
            (
                "INSERT OR IGNORE INTO returns (jid, id, success, retcode, ret, error, started,"
                " finished, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row],
            )
        ]

    def returns(self, jid: str) -> dict[str, Return]:
        rows = self.db.conn.execute(
            "SELECT id, success, retcode, ret, error, started, finished FROM returns WHERE jid=?",
            (jid,),
        ).fetchall()
        return {
            r[0]: Return(
                jid=jid,
                id=r[0],
                success=bool(r[1]),
                retcode=r[2],
                ret=jsonable.loads(r[3]),
                error=r[4],
                started=r[5],
                finished=r[6],
            )
            for r in rows
        }

    def count(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def prune(self, before: float) -> int:
        """Forget jobs (and their returns) created before ``before``."""
        conn = self.db.conn
        removed = conn.execute(
            "DELETE FROM returns WHERE jid IN (SELECT jid FROM jobs WHERE created < ?)", (before,)
        ).rowcount
        return int(removed + conn.execute("DELETE FROM jobs WHERE created < ?", (before,)).rowcount)

    def count_returns(self, jids: list[str]) -> dict[str, int]:
        if not jids:
            return {}
        marks = ",".join("?" * len(jids))
        rows = self.db.conn.execute(
            f"SELECT jid, COUNT(*) FROM returns WHERE jid IN ({marks}) GROUP BY jid", jids
        ).fetchall()
        return {r[0]: r[1] for r in rows}


def _job(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        jid=row[0],
        fun=row[1],
        args=jsonable.loads(row[2]),
        kwargs=jsonable.loads(row[3]),
        target=row[4],
        target_type=row[5],
        minions=jsonable.loads(row[6]),
        created=row[7],
        timeout=row[8],
        origin=row[9],
        causation=row[10],
        depth=row[11],
        action=row[12],
        batch=None if row[13] is None else jsonable.loads(row[13]),
        summary=None if row[14] is None else jsonable.loads(row[14]),
    )
