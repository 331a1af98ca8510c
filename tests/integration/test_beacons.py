"""Every beacon against the real thing: /proc, files, processes, a local TCP and HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minion.beacons import BUILTINS
from minion.beacons.base import Report
from minion.beacons.runner import BeaconManager, build_slots
from minion.options import Options
from tests.support import wait_until


def make(kind: str, **options: Any) -> Any:
    opts = Options(f"beacons.{kind}", options)
    beacon = BUILTINS[kind](opts)
    opts.done()
    return beacon


def one(reports: list[Report]) -> dict[str, Any]:
    assert len(reports) == 1
    return reports[0].data


def test_load_and_memory_read_proc() -> None:
    data = one(make("load", thresholds={"load1": 10_000}).poll())
    assert set(data) == {"load1", "load5", "load15", "cpus", "over"} and data["over"] is False
    assert one(make("load", thresholds={"load1": 0}).poll())["over"] is True
    mem = one(make("memory", threshold=0).poll())
    assert mem["total"] > mem["used"] > 0 and 0 < mem["percent"] <= 100 and mem["over"] is True


def test_disk_reports_each_mount_with_thresholds(tmp_path: Path) -> None:
    reports = make("disk", mounts=["/"], thresholds={"/": 0}).poll()
    (report,) = reports
    assert report.subject == "root" and report.data["mount"] == "/" and report.data["over"] is True
    assert report.data["total"] >= report.data["used"] > 0
    assert all(r.data["over"] is False for r in make("disk", thresholds={"*": 100.1}).poll())


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    # Between fork and exec the child still shows the parent's name and no command line: wait
    # until it is the sleeper, as a beacon reading /proc would see it.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    wait_until(lambda: b"time.sleep(60)" in cmdline.read_bytes(), 10, "the sleeper to start")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_process_and_service_by_process_name(sleeper: subprocess.Popen[bytes]) -> None:
    exe = os.path.basename(sys.executable)
    data = one(make("process", processes=[exe]).poll())
    assert data["running"] is True and sleeper.pid in data["pids"]
    gone = one(make("process", processes=["no-such-process-xyz"]).poll())
    assert gone == {"name": "no-such-process-xyz", "running": False, "count": 0, "pids": []}
    svc = make("service", services=[exe, "no-such-daemon"], method="process").poll()
    assert [(r.data["name"], r.data["running"], r.data["state"]) for r in svc] == [
        (exe, True, "active"),
        ("no-such-daemon", False, "inactive"),
    ]


def test_file_beacon_sees_created_modified_deleted_without_inotify(tmp_path: Path) -> None:
    beacon = make("file", paths=[str(tmp_path)])
    assert beacon.poll() == []  # the first scan only records
    target = tmp_path / "app.conf"
    target.write_text("a=1\n")
    (created,) = beacon.poll()
    assert created.data["path"] == str(target) and created.data["change"] == "created"
    assert created.data["sha256"] == hashlib.sha256(b"a=1\n").hexdigest()
    assert beacon.poll() == []
    stat = target.stat()
    target.write_text("a=2\n")  # same size: the hash tells the change
    os.utime(target, (stat.st_atime, stat.st_mtime))
    (modified,) = beacon.poll()
    assert modified.data["change"] == "modified"
    target.unlink()
    (deleted,) = beacon.poll()
    assert deleted.data == {"path": str(target), "change": "deleted"}


def test_file_beacon_recursion_is_an_option(tmp_path: Path) -> None:
    flat, deep = make("file", paths=[str(tmp_path)]), make("file", paths=[str(tmp_path)], recursive=True)
    flat.poll(), deep.poll()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_text("x")
    assert flat.poll() == [] and len(deep.poll()) == 1


def test_tcp_port_reachable_and_not() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        data = one(make("tcp_port", targets=[f"127.0.0.1:{port}"], timeout="1s").poll())
        assert data["reachable"] is True and data["latency_ms"] >= 0 and data["error"] is None
    finally:
        server.close()
    data = one(make("tcp_port", targets=[f"127.0.0.1:{port}"], timeout="1s").poll())
    assert data["reachable"] is False and data["error"]


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"status: all good" if code == 200 else b"down")

    def log_message(self, *args: Any) -> None:
        pass


def test_http_status_latency_and_body_match() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        reports = make(
            "http",
            urls=[
                f"{base}/ok",
                {"url": f"{base}/ok", "match": "all g[o]+d"},
                {"url": f"{base}/ok", "match": "broken"},
                f"{base}/down",
            ],
        ).poll()
    finally:
        server.shutdown()
        server.server_close()
    assert [(r.data["status"], r.data["ok"], r.data["matched"]) for r in reports] == [
        (200, True, None),
        (200, True, True),
        (200, False, False),
        (503, False, None),
    ]
    assert all(r.data["latency_ms"] >= 0 for r in reports)


def test_command_exit_code_output_and_timeout_kills_the_group(tmp_path: Path) -> None:
    data = one(make("command", argv=[sys.executable, "-c", "print('hi'); raise SystemExit(3)"]).poll())
    assert (data["retcode"], data["ok"], data["output"]) == (3, False, "hi")
    marker = tmp_path / "child.pid"
    code = (
        "import subprocess, time; p = subprocess.Popen(['sleep', '30']); "
        f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(30)"
    )
    slow = one(make("command", argv=[sys.executable, "-c", code], timeout="1s").poll())
    assert slow["timed_out"] is True and slow["retcode"] == 124
    child = int(marker.read_text())
    wait_until(lambda: _gone(child), 5, "the grandchild to be killed with its group")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_journal_follows_new_matching_lines_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old error\n")
    beacon = make("journal", files=[str(log)], pattern="error", max_lines=2)
    assert beacon.poll() == []  # lines already there are not reported
    with log.open("a") as handle:
        handle.write("ok line\nnew error 1\nnew error 2\nnew error 3\npartial error")
    reports = beacon.poll()
    assert [r.data["line"] for r in reports] == ["new error 1", "new error 2"]
    assert reports[-1].data["skipped"] == 1
    log.rename(tmp_path / "app.log.1")
    log.write_text("rotated error\n")
    assert [r.data["line"] for r in beacon.poll()] == ["rotated error"]


@pytest.mark.timeout(30)
def test_journal_patterns_run_in_linear_time_over_hostile_lines(tmp_path: Path) -> None:
    """A log line carries outside text (a user name, a path): a pattern that would backtrack
    under Python's re is matched by RE2 in linear time; RE2-only syntax is refused at load."""
    log = tmp_path / "auth.log"
    log.write_text("")
    beacon = make("journal", files=[str(log)], pattern="^(a+)+$")
    beacon.poll()
    with log.open("a") as handle:
        handle.write("a" * 4095 + "b\n" + "a" * 50 + "\n")
    assert [r.data["line"] for r in beacon.poll()] == ["a" * 50]
    with pytest.raises(ValueError, match="RE2 syntax"):
        make("journal", files=[str(log)], pattern="(a)\\1")


def test_heartbeat() -> None:
    data = one(make("heartbeat").poll())
    assert data["uptime"] >= 0 and data["host_uptime"] > 0


@pytest.mark.parametrize(
    "config, message",
    [
        ({"x": {"type": "nope"}}, "beacons.x: unknown beacon type 'nope'"),
        ({"load": {"intervall": 5}}, "beacons.load: unknown option 'intervall'"),
        ({"disk": {"interval": "soon"}}, "beacons.disk.interval"),
        ({"tcp_port": {"targets": ["nohost"]}}, "beacons.tcp_port.targets"),
        ({"journal": {}}, "beacons.journal.files"),
        ({"http": {"urls": ["ftp://x"]}}, "not an http(s) URL"),
    ],
)
def test_bad_beacon_options_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_slots(config, BUILTINS)


class _Broken:
    default_interval = 0.05

    def __init__(self, options: Options) -> None:
        self.calls = 0

    def poll(self) -> list[Report]:
        self.calls += 1
        raise RuntimeError("boom")


class _Hung:
    default_interval = 0.05

    def __init__(self, options: Options) -> None:
        self.release = threading.Event()

    def poll(self) -> list[Report]:
        self.release.wait(5)
        return []


def test_a_failing_or_hung_beacon_never_stops_the_others() -> None:
    kinds = {**BUILTINS, "broken": _Broken, "hung": _Hung}
    slots = build_slots(
        {
            "broken": {"interval": 0.05},
            "hung": {"interval": 0.05, "poll_timeout": 0.1},
            "heartbeat": {"interval": 0.05},
        },
        kinds,
    )
    emitted: list[tuple[str, dict[str, Any]]] = []
    manager = BeaconManager(slots, emitted.extend)

    async def scenario() -> None:
        task = asyncio.ensure_future(manager.run())
        poll_interval = 0.02
        async with asyncio.timeout(10):
            while (
                sum(1 for tag, _ in emitted if tag == "beacon/heartbeat") < 5
                or manager.slots["hung"].skipped < 2
            ):
                await asyncio.sleep(poll_interval)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        slots[1].beacon.release.set()  # type: ignore[attr-defined]  # let the hung thread end

    asyncio.run(scenario())
    assert manager.slots["broken"].errors >= 2 and manager.slots["broken"].last_error == "RuntimeError: boom"
    assert manager.slots["hung"].last_error == "timed out after 0.1s"


def test_onchange_and_emit_at_start() -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []
    slots = build_slots(
        {
            "svc": {
                "type": "process",
                "processes": ["no-such-process-xyz"],
                "onchange": True,
                "emit_at_start": True,
            },
            "quiet": {
                "type": "process",
                "processes": ["no-such-process-xyz"],
                "emit_at_start": False,
                "onchange": True,
            },
        },
        BUILTINS,
    )
    manager = BeaconManager(slots, emitted.extend)

    async def polls() -> None:
        for _ in range(3):
            for slot in manager.slots.values():
                await manager.poll(slot)

    asyncio.run(polls())
    assert [tag for tag, _ in emitted] == ["beacon/svc/no-such-process-xyz"]


def test_a_beacons_own_timeout_reaches_it_and_the_poll_timeout_is_separate() -> None:
    (slot,) = build_slots(
        {"probe": {"type": "command", "argv": ["true"], "timeout": "0.5s", "poll_timeout": "9s"}}, BUILTINS
    )
    assert slot.beacon.timeout == 0.5 and slot.timeout == 9.0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="one tag segment"):
        build_slots({"my beacon": {"type": "heartbeat"}}, BUILTINS)
    with pytest.raises(ValueError, match=r"beacons.disk.thresholds./: expected a number, got '90%'"):
        build_slots({"disk": {"thresholds": {"/": "90%"}}}, BUILTINS)


def test_a_change_that_could_not_be_queued_is_reported_again() -> None:
    queued: list[tuple[str, dict[str, Any]]] = []
    refuse = [True]

    def emit(events: list[tuple[str, dict[str, Any]]]) -> None:
        if refuse[0]:
            raise ValueError("the outbox is full")
        queued.extend(events)

    (slot,) = build_slots(
        {"svc": {"type": "process", "processes": ["no-such-process-xyz"], "onchange": True}}, BUILTINS
    )
    manager = BeaconManager([slot], emit)

    async def polls() -> None:
        await manager.poll(slot)  # first poll: refused
        refuse[0] = False
        await manager.poll(slot)  # unchanged state, but never sent: sent now
        await manager.poll(slot)  # sent already: nothing

    asyncio.run(polls())
    assert [tag for tag, _ in queued] == ["beacon/svc/no-such-process-xyz"]
    assert slot.errors == 1
