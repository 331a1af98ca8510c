"""Faults of the master's machine: a full disk, a stalled process, a damaged database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.conftest import SmallFilesystem
from tests.security.helpers import ping
from tests.support import Setup, rss_kib, run_cli, wait_until

pytestmark = pytest.mark.slow

PAYLOAD = "x" * 50_000


class Load:
    """A minion sending batches of 50 KB events through ``event send`` until stopped; it
    remembers every batch the minion took (``event send`` exit 0) and every refusal."""

    def __init__(self, setup: Setup, minion_id: str) -> None:
        self.setup, self.minion_id = setup, minion_id
        self.sent: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        batch = 0
        while not self.stop.is_set():
            tag = f"load/b{batch}"
            result = self.setup.send(self.minion_id, tag, "--count", "10", "-d", f"payload={PAYLOAD}")
            assert result.returncode == 0, result.stderr  # the minion's disk is not the one filled
            self.sent.append(tag)
            batch += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def test_a_full_disk_stops_acknowledging_and_the_master_resumes_by_itself(
    setup: Setup, small_fs: SmallFilesystem
) -> None:
    setup.edit_master(state_dir=str(small_fs.path / "state"))
    master = setup.start_master("info")
    setup.start_minion("web01")
    setup.start_minion("web02")
    setup.accept_all("web01", "web02")
    with Load(setup, "web01") as load:
        wait_until(lambda: len(load.sent) >= 3, 60, "some load")
        small_fs.fill()
        wait_until(
            lambda: not setup.cli_json("status")["storage"]["ok"], 60, "the master to see the full disk"
        )
        rss_full = rss_kib(master.proc.pid)
        # while full: alive, answering, and the other minion's commands run
        wait_until(lambda: len(load.sent) >= 6, 120, "load while full")
        assert master.alive(), master.output()[-3000:]
        assert setup.cli("event", "list", "--limit", "5").returncode == 0
        # a job is recorded when its small row still fits (the WAL reuses its space), and
        # refused with a clear message when it does not: never an internal error
        job = setup.cli("run", "web02", "test.ping")
        assert job.returncode == 0 or "disk full" in job.stderr, job.stderr
        status = setup.cli_json("status")
        assert not status["storage"]["ok"] and "disk full" in status["storage"]["error"]
        assert rss_kib(master.proc.pid) < rss_full + 64 * 1024, "memory grows while the disk is full"
        small_fs.free()
        wait_until(lambda: setup.cli_json("status")["storage"]["ok"], 60, "the master to write again")
        assert ping(setup, "web02")
    expected = Counter({(tag, n): 1 for tag in load.sent for n in range(1, 11)})
    wait_until(
        lambda: len(setup.events("--tag", "minion/web01/load/**")) >= sum(expected.values()), 180, "all"
    )
    logged = Counter(
        (e["tag"].removeprefix("minion/web01/"), e["data"]["n"])
        for e in setup.events("--tag", "minion/web01/load/**")
    )
    assert logged == expected, "every event sent is logged exactly once"
    log = master.output()
    assert log.count("events are not acknowledged until it can be written") == 1
    assert "Traceback" not in log
    assert master.alive()


def test_a_master_stopped_past_down_after_does_not_flap_its_minions(setup: Setup) -> None:
    """SIGSTOP for longer than presence.down_after, then SIGCONT: nobody went away, so no
    minion is marked suspect or down."""
    master = setup.start_master("info")
    setup.start_minion("web01")
    setup.start_minion("web02")
    setup.accept_all("web01", "web02")
    before = {e["id"] for e in setup.events("--tag", "reactor/presence/**")}
    master.proc.send_signal(signal.SIGSTOP)
    time.sleep(3.5)  # the fault itself: stopped past down_after (2s in the test setup)
    stopped_until = time.time()
    master.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: "did not run for" in master.output(), 20, "the master to notice its stall")
    wait_until(
        lambda: all(m["last_seen"] > stopped_until for m in setup.cli_json("minions")), 20, "heartbeats"
    )
    after = [e for e in setup.events("--tag", "reactor/presence/**") if e["id"] not in before]
    assert after == [], f"presence flapped: {[e['tag'] for e in after]}"
    assert {m["presence"] for m in setup.cli_json("minions")} == {"up"}


def _master_exits(setup: Setup) -> subprocess.CompletedProcess[str]:
    return run_cli("master", "-c", str(setup.master_yaml), "-l", "info", timeout=60)


def _one_line_naming(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0] and "move it aside" in errors[0] and "operations.md" in errors[0]
    assert "Traceback" not in result.stderr


def _populated(setup: Setup) -> Path:
    """A master database with a few thousand events in it, then the master stopped."""
    master = setup.start_master("info")
    for n in range(40):
        data = json.dumps({"n": n, "pad": "y" * 2000})
        assert setup.cli("event", "fire", f"ops/fill/{n}", "--data", data).returncode == 0
    assert master.stop() == 0
    setup.daemons.remove(master)
    path = setup.root / "state" / "master" / "master.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= 40
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("damage", ["overwritten at the start", "cut in half", "garbage in the middle"])
def test_a_damaged_database_stops_the_master_with_one_line_before_it_starts(
    setup: Setup, damage: str
) -> None:
    path = _populated(setup)
    data = bytearray(path.read_bytes())
    if damage == "overwritten at the start":
        data[:4096] = os.urandom(4096)
    elif damage == "cut in half":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 8192] = os.urandom(8192)
    path.write_bytes(bytes(data))
    result = _master_exits(setup)
    _one_line_naming(result, path)
    assert not (setup.root / "state" / "master" / "control.sock").exists(), "a half start"
