"""The minion's state files under faults of the machine, through real daemons.

A full disk (the minion's ``state_dir`` on a small tmpfs the test fills, the master on the
normal disk): events are refused at the door with one clear line and nothing half queued,
the minion stays up and answers, acks that cannot be deleted cost nothing, and everything
resumes by itself when space returns, each event logged exactly once. A damaged
``outbox.db`` or ``minion.db``: exit 2 with one line naming the file and the way out, at
start (before connecting anywhere) and when met later.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import SmallFilesystem
from tests.security.helpers import ping
from tests.support import Daemon, Setup, minion_cli, run_cli, wait_until

PAYLOAD = "p" * 200
EPISODE = "disk full. The minion goes on"  # the outbox's one warning per full-disk episode


class Sender(threading.Thread):
    """``event send load/<i> --count N`` over and over until stopped; keeps every outcome."""

    def __init__(self, setup: Setup, count: int) -> None:
        super().__init__(name="sender", daemon=True)
        self.setup = setup
        self.count = count
        self.results: list[tuple[str, subprocess.CompletedProcess[str]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            tag = f"load/{i}"
            result = self.setup.send("web01", tag, "--count", str(self.count), "-d", f"payload={PAYLOAD}")
            self.results.append((tag, result))
            i += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(300)
        assert not self.is_alive(), "the sender did not stop"

    def succeeded(self) -> list[str]:
        return [tag for tag, result in self.results if result.returncode == 0]


def _refused_line(outbox: Path) -> str:
    return f"error: cannot write {outbox}: disk full; nothing was queued"


def _check_outcome(result: subprocess.CompletedProcess[str], outbox: Path) -> bool:
    """An ``event send`` either queued everything or said, in one line, that nothing was queued."""
    if result.returncode == 0:
        assert result.stdout.startswith("queued "), result.stdout
        return True
    assert result.returncode == 1 and result.stderr.strip() == _refused_line(outbox), result.stderr
    return False


def _logged(setup: Setup) -> Counter[str]:
    """How many times each tag of web01 is in the master's log."""
    return Counter(e["tag"] for e in setup.events("--source", "web01", "--tag", "minion/web01/**"))


def _check_exactly_once(setup: Setup, expected: dict[str, int]) -> None:
    """Every send that succeeded is in the log exactly once (its n from 1 to count), nothing else."""
    total = sum(expected.values())
    wait_until(lambda: sum(_logged(setup).values()) >= total, 180, f"{total} events in the master's log")
    events = setup.events("--source", "web01", "--tag", "minion/web01/**")
    by_tag: dict[str, list[int]] = {}
    for event in events:
        by_tag.setdefault(event["tag"].removeprefix("minion/web01/"), []).append(event["data"]["n"])
    assert set(by_tag) == set(expected), "no event of a refused send, none missing"
    for tag, count in expected.items():
        assert sorted(by_tag[tag]) == list(range(1, count + 1)), f"{tag}: each event exactly once"


def _answers(setup: Setup) -> dict[str, Any]:
    """``run -L web01 test.ping``: web01's return (success, or why it was refused)."""
    result = setup.cli("run", "-L", "web01", "test.ping", "--json", "--timeout", "10")
    assert result.returncode in (0, 1), result.stderr
    answer = json.loads(result.stdout)
    ret: dict[str, Any] = answer["returns"]["web01"]
    ret["jid"] = answer["jid"]
    return ret


def _check_ping_while_full(setup: Setup, minion: Daemon, database: Path) -> None:
    """A job is answered on a full disk: run, or refused unrun because its claim cannot be written."""
    ret = _answers(setup)
    if not ret["success"]:
        assert ret["error"] == (
            f"not run: cannot write {database}: disk full (a job is recorded before it runs)"
        ), ret
        assert f"running test.ping (job {ret['jid']})" not in minion.output()


def _minion_status(setup: Setup) -> dict[str, Any]:
    """``python -m minion status`` of web01; {} while its local socket is not up yet."""
    result = minion_cli("status", "-c", str(setup.root / "minion-web01.yaml"))
    if result.returncode == 3:
        return {}
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def _depth(setup: Setup) -> int | None:
    status = _minion_status(setup)
    return int(status["outbox"]["depth"]) if status else None


def _all_acked(setup: Setup) -> bool:
    outbox = _minion_status(setup).get("outbox")
    return outbox is not None and outbox["acked"] == outbox["next_seq"] - 1


def _rows(outbox: Path) -> int:
    with sqlite3.connect(outbox, timeout=10) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _no_traceback(minion: Daemon) -> None:
    output = minion.output()
    assert "Traceback" not in output and "cannot rollback" not in output, output[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_full_disk_refuses_events_keeps_the_minion_up_and_it_recovers_by_itself(
    setup: Setup, small_fs: SmallFilesystem
) -> None:
    state = small_fs.path / "web01"
    outbox, database = state / "outbox.db", state / "minion.db"
    setup.start_master(level="info")
    minion = setup.start_minion("web01", state_dir=str(state))
    setup.accept_all("web01")
    sender = Sender(setup, 300)
    sender.start()
    wait_until(lambda: len(sender.succeeded()) >= 3, 120, "a few sends to go through")

    small_fs.fill()  # under load: sends in flight, the master acknowledging as it goes
    big = ("big", "--count", "20000", "-d", "payload=" + "b" * 1000)  # ~20 MB: can never fit now
    refused = setup.send("web01", *big)
    assert not _check_outcome(refused, outbox)
    episodes = minion.output().count(EPISODE)
    assert episodes >= 1
    seen = len(sender.results)
    wait_until(lambda: len(sender.results) >= seen + 3, 120, "more sends on the full disk")
    sender.stop()  # every send on the way either queued everything or nothing, and said so
    for _, result in sender.results:
        _check_outcome(result, outbox)
    for _ in range(3):  # refused again and again: logged once for the episode, not per send
        assert not _check_outcome(setup.send("web01", *big), outbox)
    assert minion.output().count(EPISODE) == episodes

    assert minion.alive(), minion.output()[-3000:]
    assert setup.presence("web01") == "up"  # heartbeats go on
    _check_ping_while_full(setup, minion, database)

    small_fs.free()  # no restart: the minion finds out by itself
    after = setup.send("web01", "after", "--count", "300", "-d", f"payload={PAYLOAD}")
    assert _check_outcome(after, outbox), after.stderr
    wait_until(lambda: ping(setup, "web01"), 30, "test.ping to run again")
    expected = {tag: 300 for tag in sender.succeeded()} | {"after": 300}
    _check_exactly_once(setup, expected)
    wait_until(lambda: _rows(outbox) == 0, 60, "the acknowledged rows to be deleted")
    assert minion.alive() and minion.output().count("starting (key") == 1, "never restarted"
    assert "can be written again" in minion.output()
    _no_traceback(minion)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_master_back_while_the_disk_is_full_acks_cost_nothing_and_restarts_work(
    setup: Setup, small_fs: SmallFilesystem
) -> None:
    """The case that crashed: acks arriving on a full disk, deleting acknowledged rows failed."""
    state = small_fs.path / "web01"
    outbox, database = state / "outbox.db", state / "minion.db"
    master = setup.start_master(level="info")
    minion = setup.start_minion("web01", state_dir=str(state))
    setup.accept_all("web01")
    assert master.stop() == 0
    setup.daemons.remove(master)
    expected = {}
    for i in range(3):
        result = setup.send("web01", f"queued/{i}", "--count", "2000", "-d", f"payload={PAYLOAD}")
        assert _check_outcome(result, outbox), result.stderr
        expected[f"queued/{i}"] = 2000

    small_fs.fill()
    setup.start_master(level="info")
    _check_exactly_once(setup, expected)  # delivered and acknowledged on the full disk
    assert EPISODE in minion.output(), "the acknowledged rows could not be deleted"
    assert minion.alive(), minion.output()[-3000:]
    wait_until(lambda: setup.presence("web01") == "up", 20, "web01 up")
    _check_ping_while_full(setup, minion, database)

    # A restart on the full disk: the minion opens its files as they are and comes back; what
    # was acknowledged but not deleted is sent again and the master drops it as a duplicate.
    assert minion.stop() == 0
    logged = len(minion.output())
    minion = setup.start_minion("web01", state_dir=str(state))  # the same log file
    wait_until(lambda: "key accepted" in minion.output()[logged:], 30, "web01 back")
    _check_ping_while_full(setup, minion, database)
    wait_until(lambda: _all_acked(setup), 60, "the restarted minion's outbox to be acknowledged")
    _check_exactly_once(setup, expected)

    small_fs.free()
    after = setup.send("web01", "after", "--count", "300", "-d", f"payload={PAYLOAD}")
    assert _check_outcome(after, outbox), after.stderr
    _check_exactly_once(setup, expected | {"after": 300})
    wait_until(lambda: _rows(outbox) == 0, 60, "the acknowledged rows to be deleted")
    assert minion.alive()
    _no_traceback(minion)


# -- damaged files ------------------------------------------------------------------------------


def _overwrite_start(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(b"\xa5" * 4096)


def _cut_in_half(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _garbage_in_the_middle(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2 + 100)  # inside a page, past its header
        handle.write(b"garbage!" * 64)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "overwritten at the start": _overwrite_start,
    "cut in half": _cut_in_half,
    "garbage in the middle": _garbage_in_the_middle,
}


def _populated(setup: Setup) -> tuple[Path, Path]:
    """web01's state after a few jobs and 3,000 events queued while the master was down."""
    master = setup.start_master(level="info")
    minion = setup.start_minion("web01")
    setup.accept_all("web01")
    for _ in range(20):
        assert ping(setup, "web01")
    assert master.stop() == 0
    setup.daemons.remove(master)
    result = setup.send("web01", "load", "--count", "3000", "-d", f"payload={PAYLOAD}")
    assert result.returncode == 0, result.stderr
    assert minion.stop() == 0
    setup.daemons.remove(minion)
    state = setup.root / "state" / "web01"
    return state / "outbox.db", state / "minion.db"


def _restore(intact: Path, *paths: Path) -> None:
    for path in paths:
        for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copy2(intact / path.name, path)


def _start(setup: Setup) -> subprocess.CompletedProcess[str]:
    return run_cli("minion", "-c", str(setup.root / "minion-web01.yaml"), timeout=120)


def _check_refused(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: the database is damaged ("), lines[0]
    assert f"move it aside (e.g. to {path}.damaged)" in lines[0]
    assert "restore it from a backup; see docs/operations.md, 'Damaged state files'" in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_damaged_outbox_or_minion_database_stops_the_minion_at_start_with_one_line(
    setup: Setup, tmp_path: Path
) -> None:
    outbox, database = _populated(setup)
    assert outbox.stat().st_size > 256 * 1024  # the middle is inside pages of events
    for path in (outbox, database):  # a clean stop leaves everything in the file itself
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    intact = tmp_path / "intact"
    intact.mkdir()
    for path in (outbox, database):
        shutil.copy2(path, intact / path.name)

    # minion.db holds a few claims in mostly empty pages: garbage there may land in unused
    # space, which is no damage (SQLite agrees), so it is damaged the two other ways.
    cases = [(outbox, name) for name in DAMAGES] + [
        (database, "overwritten at the start"),
        (database, "cut in half"),
    ]
    for path, name in cases:
        _restore(intact, outbox, database)
        DAMAGES[name](path)
        result = _start(setup)
        _check_refused(result, path)
        assert "starting" not in result.stderr, f"{path.name} {name}: a half start"

    # What docs/operations.md says to do: move the damaged file aside; the minion starts anew.
    _restore(intact, outbox, database)
    _garbage_in_the_middle(outbox)
    outbox.rename(outbox.with_name("outbox.db.damaged"))
    minion = setup.start_minion("web01")
    wait_until(lambda: _depth(setup) == 0, 30, "a new, empty outbox")
    assert minion.stop() == 0
    setup.daemons.remove(minion)

    # And the intact files: the minion starts with all 3,000 events still queued.
    _restore(intact, outbox)
    minion = setup.start_minion("web01")
    wait_until(lambda: _depth(setup) == 3000, 30, "the 3,000 events queued")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_damage_met_while_running_stops_the_minion_with_one_line(setup: Setup) -> None:
    master = setup.start_master(level="info")
    minion = setup.start_minion("web01")
    setup.accept_all("web01")
    assert master.stop() == 0  # events stay in the outbox
    setup.daemons.remove(master)
    assert setup.send("web01", "load", "--count", "3000", "-d", f"payload={PAYLOAD}").returncode == 0
    outbox = setup.root / "state" / "web01" / "outbox.db"
    with sqlite3.connect(outbox, timeout=10) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # all in the file
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='outbox'").fetchone()[0]
        size = outbox.stat().st_size
        with outbox.open("r+b") as handle:  # every page of the outbox table, behind SQLite's back
            handle.seek((root - 1) * 4096)
            handle.write(b"garbage!" * ((size - (root - 1) * 4096) // 8))
        # A write elsewhere in the file: the minion's next transaction drops its cached pages.
        conn.execute("UPDATE meta SET value=value WHERE key='dropped'")
    conn.close()

    result = setup.send("web01", "more")  # the first touch of the outbox table since
    assert result.returncode == 1 and f"{outbox}: the database is damaged" in result.stderr, result.stderr
    assert minion.proc.wait(30) == 2
    setup.daemons.remove(minion)
    last = minion.output().strip().splitlines()[-1]
    assert last.startswith(f"error: {outbox}: the database is damaged ("), last
    assert "docs/operations.md, 'Damaged state files'" in last
    assert "Traceback" not in minion.output()
