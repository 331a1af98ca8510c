"""Scenarios (f), (g) and (h): the path users run, through real minion agents.

A ``reactord init`` setup on free ports, ``python -m reactord master`` and one ``python -m
reactord minion`` per id as processes (each minion with its own keys, state and outbox),
events handed to the minions with ``reactord event send``, and, for (g) and (h), a rule whose
``run: test.echo`` goes back to the minion that sent the event, runs in its executor and
returns. Every number is read afterwards from what the master stored (events, delivery,
jobs, returns); the bench process only waits for it, polling with a deadline.

(f) fills every outbox while the minions' keys are still pending (connected, but not let
deliver), then accepts them all with one ``reactord key accept --all``: the master welcomes
each waiting minion at once and they start delivering together. The time is from the
first event the master received to the commit of the last (``delivery.updated``), so the
``event send`` CLI is never in it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.harness import free_port
from minion.config import load_minion_config
from reactord.control import ControlClient
from reactord.protocol.localsock import LocalClient

T = TypeVar("T")
REACTORD = [sys.executable, "-m", "reactord"]

#: The rule of (g) and (h): every event echoes its ``n`` back through the minion that sent it.
ECHO_TAG = "app/burst"
ECHO_RULE = """\
rules:
  - name: burst-echo
    on: "minion/*/app/burst"
    do:
      - run: test.echo
        target: "{{ source }}"
        args: ["{{ data.n }}"]
"""

#: (b)'s load event (bench.scenarios._payload); ``seq_mod`` 0 fires the realistic rules' hot rule.
LOAD_TAG = "beacon/load"


def _load(seq_mod: int) -> dict[str, Any]:
    return {"load1": 0.42, "load5": 0.31, "load15": 0.2, "cpus": 2, "over": False} | {
        "seq_mod": seq_mod,
        "value": seq_mod,
    }


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(every)  # polling the daemons, with a deadline


@dataclass
class RealSetup:
    """A master and its minions as processes, in a ``reactord init`` folder."""

    root: Path
    ids: list[str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def master_yaml(self) -> Path:
        return self.root / "master.yaml"

    @property
    def db(self) -> Path:
        return self.root / "state" / "master" / "master.db"

    def minion_yaml(self, minion_id: str) -> Path:
        return self.root / f"minion-{minion_id}.yaml"

    def control(self, op: str, **args: Any) -> Any:
        return ControlClient(self.root / "state" / "master" / "control.sock", timeout=30).call(op, **args)

    def cli(self, *args: str, config: Path | None = None) -> str:
        """``python -m reactord ARGS -c CONFIG`` (the master's by default); its stdout."""
        result = subprocess.run(
            [*REACTORD, *args, "-c", str(config or self.master_yaml)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"reactord {' '.join(args)}: exit {result.returncode}: {result.stderr}")
        return result.stdout

    def send_argv(self, minion_id: str, tag: str, count: int, data: dict[str, Any]) -> list[str]:
        """``reactord event send TAG --data JSON --count N --json -c minion-ID.yaml``."""
        options = [f"--data={json.dumps(data)}", f"--count={count}", "--json"]
        return [*REACTORD, "event", "send", tag, *options, f"--config={self.minion_yaml(minion_id)}"]

    def send(self, minion_id: str, tag: str, count: int, data: dict[str, Any]) -> dict[str, Any]:
        """``reactord event send`` on ``minion_id``'s host: ``{count, first_seq, last_seq, epoch}``."""
        argv = self.send_argv(minion_id, tag, count, data)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"event send on {minion_id}: exit {result.returncode}: {result.stderr}")
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as conn:
            return conn.execute(sql, args).fetchall()

    def accept_all(self) -> None:
        """``reactord key accept --all``, then wait until every minion is up."""
        self.cli("key", "accept", "--all")

        def up() -> bool:
            presence = {m["id"]: m["presence"] for m in self.control("minions")}
            return all(presence.get(i) == "up" for i in self.ids)

        wait_for(up, 60, "the minions to be up")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU (user + system) of each process so far, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, proc in self.procs.items():
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*REACTORD, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.root
        )
        log.close()

    def start(self) -> None:
        """The master, then the minions; returns once every minion's key is pending."""
        self._spawn("master", "master", "-c", str(self.master_yaml))
        socket = self.root / "state" / "master" / "control.sock"
        wait_for(lambda: socket.exists() or self.procs["master"].poll() is not None, 60, "the master")
        if self.procs["master"].poll() is not None:
            raise RuntimeError((self.root / "master.log").read_text()[-2000:])
        for minion_id in self.ids:
            self._spawn(minion_id, "minion", "-c", str(self.minion_yaml(minion_id)))
        wait_for(lambda: set(self.ids) <= set(self.control("key.list")["pending"]), 60, "pending keys")

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def real_setup(root: Path, ids: list[str], rules: str) -> Iterator[RealSetup]:
    """``reactord init`` on free ports, ``rules`` as the only rule file, a minion.yaml per id
    (own keys, state and outbox; no beacons), logs at warning; started, keys pending."""
    ports = [f"--{name}-port={free_port()}" for name in ("event", "command", "key")]
    init = [*REACTORD, "init", str(root), f"--minion-id={ids[0]}", "--http-port=0", *ports]
    subprocess.run(init, check=True, capture_output=True)
    for old in (root / "reactor.d").glob("*.yaml"):
        old.unlink()  # init's example rules run test.ping on every minion that comes up
    (root / "reactor.d" / "bench.yaml").write_text(rules)
    master = yaml.safe_load((root / "master.yaml").read_text())
    (root / "master.yaml").write_text(yaml.safe_dump({**master, "log_level": "warning"}))
    minion = yaml.safe_load((root / "minion.yaml").read_text())
    setup = RealSetup(root, ids)
    for minion_id in ids:
        own = {"id": minion_id, "pki_dir": f"pki/{minion_id}", "state_dir": f"state/{minion_id}"}
        setup.minion_yaml(minion_id).write_text(yaml.safe_dump({**minion, **own, "log_level": "warning"}))
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def minion_ids(count: int) -> list[str]:
    return [f"real{n}" for n in range(1, count + 1)]


def _cpu_row(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    master = after["master"] - before["master"]
    minions = sum(after[k] - before[k] for k in after if k != "master")
    return {"master_cpu_s": round(master, 2), "minions_cpu_s": round(minions, 2)}


def ingest(root: Path, *, minions: int, per_minion: int, rules: str) -> dict[str, Any]:
    """(f): every outbox filled while pending (1% of it firing the hot rule, sent first),
    then all accepted at once; events/s from the first arrival to the last commit."""
    ids = minion_ids(minions)
    with real_setup(root, ids, rules) as setup:
        sent: dict[str, tuple[str, int]] = {}
        for minion_id in ids:
            hot = setup.send(minion_id, LOAD_TAG, per_minion // 100, _load(0))
            rest = setup.send(minion_id, LOAD_TAG, per_minion - per_minion // 100, _load(1))
            if hot["epoch"] != rest["epoch"] or rest["last_seq"] != per_minion:
                raise RuntimeError(f"{minion_id}: unexpected outbox {hot}, {rest}")
            sent[minion_id] = (rest["epoch"], rest["last_seq"])
        total = sum(count for _, count in sent.values())
        marks = ",".join("?" * len(ids))
        cpu = setup.cpu_seconds()
        setup.cli("key", "accept", "--all")
        wait_for(
            lambda: (
                setup.query(f"SELECT SUM(last_seq) FROM delivery WHERE source IN ({marks})", *ids)[0][0]
                == total
            ),
            600,
            f"{total} events delivered",
            every=0.2,
        )
        cpu_row = _cpu_row(cpu, setup.cpu_seconds())
        first = setup.query(f"SELECT MIN(received) FROM events WHERE source IN ({marks})", *ids)[0][0]
        last = setup.query(f"SELECT MAX(updated) FROM delivery WHERE source IN ({marks})", *ids)[0][0]
        logged = unique = loss = 0
        for minion_id, (epoch, count) in sent.items():
            n, distinct = setup.query(
                "SELECT COUNT(*), COUNT(DISTINCT seq) FROM events WHERE source=? AND epoch=? AND tag=?",
                minion_id,
                epoch,
                f"minion/{minion_id}/{LOAD_TAG}",
            )[0]
            logged, unique, loss = logged + n, unique + distinct, loss + count - distinct
        fired = setup.query("SELECT COUNT(*) FROM actions")[0][0]
        refused = setup.control("status")["budget_refused"]
    seconds = last - first
    return {
        "scenario": f"(f) ingest, {minions} real minions, 1,000 rules",
        "minions": minions,
        "events": total,
        "seconds": round(seconds, 3),
        "accepted_per_s": round(logged / seconds),
        "reactions": fired,
        "loss": loss,
        "duplicates": logged - unique,
        "budget_refused": sum(refused.values()),
        **cpu_row,
    }


def burst(root: Path, *, minions: int = 2, events: int = 2000) -> dict[str, Any]:
    """(g): each minion hands over its share of ``events`` at once (the ``event send``s run
    together); reactions/s from the first event's arrival to the last return stored."""
    ids = minion_ids(minions)
    with real_setup(root, ids, ECHO_RULE) as setup:
        setup.accept_all()
        cpu = setup.cpu_seconds()
        shares = [events // minions + (1 if n < events % minions else 0) for n in range(minions)]
        senders = [
            subprocess.Popen(setup.send_argv(i, ECHO_TAG, share, {}), stdout=subprocess.DEVNULL)
            for i, share in zip(ids, shares, strict=True)
        ]
        if any(proc.wait(300) != 0 for proc in senders):
            raise RuntimeError("an event send failed")
        wait_for(lambda: setup.query("SELECT COUNT(*) FROM returns")[0][0] >= events, 300, "the returns", 0.2)
        cpu_row = _cpu_row(cpu, setup.cpu_seconds())
        rows = setup.query(
            "SELECT e.received, j.created, r.received, r.success FROM events e"
            " JOIN jobs j ON j.causation = e.id JOIN returns r ON r.jid = j.jid"
            " WHERE e.tag LIKE 'minion/%/app/burst'"
        )
        logged = setup.query("SELECT COUNT(*) FROM events WHERE tag LIKE 'minion/%/app/burst'")[0][0]
        jobs = setup.query("SELECT COUNT(*) FROM jobs")[0][0]
    first, last = min(r[0] for r in rows), max(r[2] for r in rows)
    waits = sorted(r[1] - r[0] for r in rows)
    return {
        "scenario": f"(g) burst of {events:,} run reactions, {minions} real minions",
        "minions": minions,
        "events": logged,
        "jobs": jobs,
        "returned": len(rows),
        "failed": sum(1 for r in rows if not r[3]),
        "lost": events - len(rows),
        "seconds": round(last - first, 3),
        "reactions_per_s": round(len(rows) / (last - first)),
        "arrival_to_job_p50_ms": round(1000 * statistics.median(waits), 1),
        "arrival_to_job_max_ms": round(1000 * waits[-1], 1),
        **cpu_row,
    }


def one_at_a_time(
    root: Path, *, count: int = 200, poll: float = 0.005, handover: str = "cli"
) -> dict[str, Any]:
    """(h): one event handed over, its return stored on the master, then the next; from the
    event's ``time`` (the minion's clock when it took it) to its return's (the master's when
    it stored it: ``returns.received``, and the logged ``reactor/job/<jid>/ret/<id>`` event).
    ``handover``: ``cli``, a ``reactord event send`` process per event (two Python start-ups:
    the reactions are about 0.3 s apart, the disk and the CPUs idle in between), or
    ``socket``, the same request on the minion's local socket from this process (what the
    CLI sends, without the start-ups: the next event goes as soon as a return is stored).
    ``poll``: how often the returns are counted (it sets only when the next event goes)."""
    ids = minion_ids(1)
    with real_setup(root, ids, ECHO_RULE) as setup:
        setup.accept_all()
        local = LocalClient(
            load_minion_config(str(setup.minion_yaml(ids[0]))).local_socket, 30, daemon="minion"
        )
        with closing(sqlite3.connect(f"file:{setup.db}?mode=ro", uri=True, timeout=30)) as conn:
            for n in range(1, count + 1):
                if handover == "cli":
                    setup.send(ids[0], ECHO_TAG, 1, {"n": n})
                else:
                    local.call("event.send", tag=ECHO_TAG, data={"n": n}, count=1)
                wait_for(
                    lambda n=n: conn.execute("SELECT COUNT(*) FROM returns").fetchone()[0] >= n,
                    30,
                    f"return {n}",
                    every=poll,
                )
        rows = setup.query(
            "SELECT e.time, e.received, j.created, r.started, r.finished, r.received, ret.time FROM events e"
            " JOIN jobs j ON j.causation = e.id JOIN returns r ON r.jid = j.jid"
            " JOIN events ret ON ret.tag = 'reactor/job/' || j.jid || '/ret/' || r.id"
            " WHERE e.tag LIKE 'minion/%/app/burst' AND r.success = 1"
        )
    if len(rows) != count:
        raise RuntimeError(f"(h): {len(rows)} successful returns of {count}")

    def ms(values: list[float]) -> tuple[float, float]:
        ordered = sorted(1000 * v for v in values)
        return round(statistics.median(ordered), 2), round(ordered[int(len(ordered) * 0.99)], 2)

    total = ms([r[5] - r[0] for r in rows])
    logged = ms([r[6] - r[0] for r in rows])
    return {
        "scenario": f"(h) one reaction at a time, {count} in a row, 1 real minion, handed over by {handover}",
        "reactions": len(rows),
        "event_to_return_p50_ms": total[0],
        "event_to_return_p99_ms": total[1],
        "event_to_ret_event_p50_ms": logged[0],
        "event_to_ret_event_p99_ms": logged[1],
        # where the time goes (medians; the minion's and the master's clocks are one host's)
        "to_master_p50_ms": ms([r[1] - r[0] for r in rows])[0],
        "to_job_p50_ms": ms([r[2] - r[1] for r in rows])[0],
        "to_minion_start_p50_ms": ms([r[3] - r[2] for r in rows])[0],
        "function_p50_ms": ms([r[4] - r[3] for r in rows])[0],
        "back_to_master_p50_ms": ms([r[5] - r[4] for r in rows])[0],
    }
