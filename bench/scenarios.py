"""The benchmark scenarios; each returns a row of the results table."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Fleet, free_port, make_keys, master
from reactord.control import ControlClient

CACHE = Path(__file__).resolve().parent / "results" / "keys"


def ids(count: int) -> list[str]:
    return [f"sim{i:04d}" for i in range(count)]


#: The beacons the realistic rules listen to (the bench's load events are none of them).
BEACONS = (
    "disk/root",
    "service/nginx",
    "service/sshd",
    "http/site",
    "tcp_port/db",
    "process/cron",
    "file",
    "journal/syslog",
    "memory",
    "heartbeat",
)


def rule_glob(n: int, beacon: str, app_suffix: str = "") -> str:
    """Realistic rule ``n``'s tag glob on ``beacon``: a third with a literal minion id (``webNN``,
    which no simulated minion is), one in seven ``minion/*/app/N/**`` instead."""
    if n % 7 == 0:
        return f"minion/*/app/{n}{app_suffix}/**"
    return f"minion/*/beacon/{beacon}" if n % 3 else f"minion/web{n % 50:02d}/beacon/{beacon}"


def realistic_rules(count: int, firing_share: float = 0.01) -> str:
    """``count`` rules spread over tags and conditions like a real rule set; about ``firing_share`` of
    the bench's load events fire one of them, with a cheap action (a debug log line)."""
    lines = ["rules:"]
    modulus = max(1, round(1 / firing_share))
    lines += [
        "  - name: hot-load",
        '    on: "minion/*/beacon/load"',
        "    when: {data.seq_mod: {eq: 0}}",
        "    do: [{log: 'load on {{ source }}', level: debug}]",
    ]
    for n in range(count - 1):
        lines += [
            f"  - name: rule-{n}",
            f'    on: "{rule_glob(n, BEACONS[n % len(BEACONS)])}"',
            f"    when: {{data.value: {{gt: {n % 100}}}, source: {{glob: 'web*'}}}}",
            "    do: [{log: 'x', level: debug}]",
        ]
    del modulus
    return "\n".join(lines) + "\n"


def _drive(fleet: Fleet, per_minion: int, *, rate: float | None = None, mod: int = 100) -> float:
    """Send ``per_minion`` events from every simulated minion (as fast as possible, or at ``rate``
    events/s in all) and wait for every ack; returns the seconds it took."""
    started = time.monotonic()
    left = {sim.id: per_minion for sim in fleet.minions}
    sent_total = 0
    batches = 0  # the share of events that fire the rule follows the batch count
    last_progress, last_acked = time.monotonic(), 0
    while True:
        now = time.time()
        if rate is not None:
            allowed = int((time.monotonic() - started) * rate) - sent_total
        else:
            allowed = 1 << 30
        progressed = False
        for sim in fleet.minions:
            if allowed <= 0:
                break
            want = min(left[sim.id], allowed)
            if want <= 0:
                continue
            if mod:
                sim.data = _payload(batches, mod)
            sent = fleet.send(sim, min(want, 1 if rate is not None else fleet.batch), now)
            left[sim.id] -= sent
            sent_total += sent
            batches += 1 if sent else 0
            allowed -= sent
            progressed = progressed or sent > 0
        fleet.pump(0 if progressed else 0.002)
        if not any(left.values()) and fleet.all_acked():
            return time.monotonic() - started
        acked = sum(s.acked for s in fleet.minions)
        if acked != last_acked:
            last_progress, last_acked = time.monotonic(), acked
        elif time.monotonic() - last_progress > 2:
            fleet.resend_unacked(time.time())
            last_progress = time.monotonic()


_PAYLOADS: dict[int, bytes] = {}


def _payload(seq: int, mod: int) -> bytes:
    from reactord.protocol import codec

    key = seq % mod
    if key not in _PAYLOADS:
        _PAYLOADS[key] = codec.pack(
            {
                "load1": 0.42,
                "load5": 0.31,
                "load15": 0.2,
                "cpus": 2,
                "over": False,
                "seq_mod": key,
                "value": key,
            }
        )
    return _PAYLOADS[key]


def ingest_counts(mp: Any, fleet: Fleet) -> tuple[int, int, int, int]:
    """Events sent, logged, logged once (distinct source and seq), and actions recorded."""
    sent = sum(s.next_seq - 1 for s in fleet.minions)
    logged, unique = mp.query(
        "SELECT COUNT(*), COUNT(DISTINCT source || ':' || seq) FROM events WHERE tag LIKE 'minion/%'"
    )[0]
    fired = mp.query("SELECT COUNT(*) FROM actions")[0][0]
    return sent, logged, unique, fired


def _ingest_row(
    name: str,
    mp: Any,
    fleet: Fleet,
    seconds: float,
    cpu: float,
    before: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> dict[str, Any]:
    """The row of an ingest run; ``before``: ``ingest_counts`` when the measured part began."""
    sent, logged, unique, fired = (n - b for n, b in zip(ingest_counts(mp, fleet), before, strict=True))
    return {
        "scenario": name,
        "minions": len(fleet.minions),
        "events": sent,
        "seconds": round(seconds, 2),
        "accepted_per_s": round(logged / seconds),
        "reacted_per_s": round(fired / seconds, 1),
        "loss": sent - unique,
        "duplicates": logged - unique,
        "master_cpu_s": round(cpu, 1),
        "master_peak_rss_mb": round(mp.peak_rss_mb(), 1),
    }


def ingest(
    root: Path,
    name: str,
    *,
    minions: int = 100,
    events: int = 200_000,
    rules: str | None = None,
) -> dict[str, Any]:
    names = ids(minions)
    keys = make_keys(names, CACHE)
    with master(root, names, keys, rules) as mp:
        fleet = Fleet(mp, names, keys)
        try:
            fleet.hello()
            cpu = mp.cpu_seconds()
            seconds = _drive(fleet, events // minions)
            cpu = mp.cpu_seconds() - cpu
            return _ingest_row(name, mp, fleet, seconds, cpu)
        finally:
            fleet.close()


def latency(root: Path, *, rate: float = 1000.0, seconds: float = 20.0, minions: int = 10) -> dict[str, Any]:
    """A steady ``rate``: every event fires the rule; time from arrival (and creation) to dispatch."""
    names = ids(minions)
    keys = make_keys(names, CACHE)
    rules = realistic_rules(1000, firing_share=1.0)
    with master(root, names, keys, rules) as mp:
        fleet = Fleet(mp, names, keys, batch=1)
        try:
            fleet.hello()
            per_minion = int(rate * seconds / minions)
            sent = per_minion * minions
            _drive(fleet, per_minion, rate=rate, mod=1)
            deadline = time.monotonic() + 30
            while mp.query("SELECT COUNT(*) FROM actions WHERE started IS NOT NULL")[0][0] < sent:
                if time.monotonic() > deadline:
                    break
                fleet.pump(0.1)  # the audit is written in batches: wait until every action is on record
            rows = mp.query(
                "SELECT a.started - e.received, a.started - e.time FROM actions a"
                " JOIN events e ON a.event_id = e.id WHERE a.started IS NOT NULL"
            )
        finally:
            fleet.close()
    arrival = sorted(r[0] * 1000 for r in rows)
    creation = sorted(r[1] * 1000 for r in rows)
    return {
        "scenario": f"(e) reaction latency at {rate:.0f} events/s",
        "minions": minions,
        "events": sent,
        "reactions": len(rows),
        "arrival_to_dispatch_p50_ms": round(statistics.median(arrival), 2),
        "arrival_to_dispatch_p99_ms": round(arrival[int(len(arrival) * 0.99)], 2),
        "creation_to_dispatch_p50_ms": round(statistics.median(creation), 2),
        "creation_to_dispatch_p99_ms": round(creation[int(len(creation) * 0.99)], 2),
    }


def many_minions(root: Path, *, minions: int = 1000) -> dict[str, Any]:
    """``run '*' test.ping`` over 1,000 connected (simulated) minions: how long until all return."""
    names = ids(minions)
    keys = make_keys(names, CACHE)
    with master(root, names, keys, None, job_timeout=30) as mp:
        fleet = Fleet(mp, names, keys)
        try:
            fleet.hello()
            client = ControlClient(root / "state" / "control.sock", timeout=120)
            import threading

            result: dict[str, Any] = {}

            def run() -> None:
                started = time.monotonic()
                result["job"] = client.call(
                    "run", target="*", target_type="glob", fun="test.ping", args=[], kwargs={}, timeout=30
                )
                result["seconds"] = time.monotonic() - started

            thread = threading.Thread(target=run)
            thread.start()
            while thread.is_alive():
                fleet.pump(0.01)
            returned = sum(1 for r in result["job"]["returns"].values() if r["success"])
            return {
                "scenario": f"(d) run '*' test.ping on {minions} minions",
                "minions": minions,
                "returned": returned,
                "seconds": round(result["seconds"], 2),
                "master_rss_mb": round(mp.rss_mb(), 1),
                "master_peak_rss_mb": round(mp.peak_rss_mb(), 1),
            }
        finally:
            fleet.close()


def idle_minion(root: Path, *, seconds: float = 30.0) -> dict[str, Any]:
    """A real minion (the agent), connected, with its default beacons, doing nothing."""
    port_base = free_port()
    del port_base
    setup = root / "setup"
    event, command, key = free_port(), free_port(), free_port()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reactord",
            "init",
            str(setup),
            "--minion-id",
            "idle",
            "--accept-local",
            "--event-port",
            str(event),
            "--command-port",
            str(command),
            "--key-port",
            str(key),
        ],
        check=True,
        capture_output=True,
    )
    master_proc = subprocess.Popen(
        [sys.executable, "-m", "reactord", "master", "-c", str(setup / "master.yaml"), "-l", "warning"]
    )
    minion_proc = subprocess.Popen(
        [sys.executable, "-m", "minion", "-c", str(setup / "minion.yaml"), "-l", "warning"]
    )
    try:
        client = ControlClient(setup / "state" / "master" / "control.sock", timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if any(m["presence"] == "up" for m in client.call("minions")):
                    break
            except Exception:
                pass
            time.sleep(0.2)  # polling the master until the minion is up, with a deadline
        time.sleep(3)  # let start-up work (imports, first polls) finish before measuring idle
        cpu0, wall0 = _cpu(minion_proc.pid), time.monotonic()
        time.sleep(seconds)  # the measurement itself: idle time
        cpu = _cpu(minion_proc.pid) - cpu0
        wall = time.monotonic() - wall0
        rss = _rss(minion_proc.pid)
    finally:
        for proc in (minion_proc, master_proc):
            proc.terminate()
            proc.wait(30)
    return {
        "scenario": "idle minion (real agent)",
        "cpu_percent": round(100 * cpu / wall, 2),
        "rss_mb": round(rss, 1),
        "seconds": round(wall, 1),
    }


def _cpu(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
