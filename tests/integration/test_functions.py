"""Every function against the real host: programs, processes, files, ports, packages."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from minion.beacons import BUILTINS as BEACONS
from minion.beacons.runner import BeaconManager, build_slots
from minion.errors import FunctionError
from minion.functions import BUILTINS
from minion.functions.context import JobContext, Outcome, Settings

F = BUILTINS


def ctx(tmp_path: Path | None = None, **settings: Any) -> JobContext:
    roots = (tmp_path / "root",) if tmp_path is not None else ()
    return JobContext(
        jid="j",
        minion_id="web01",
        deadline=time.monotonic() + 30,
        grains={},
        functions=F,
        settings=Settings(file_roots=roots, **settings),
    )


def test_cmd_run_argv_and_words_never_a_shell(tmp_path: Path) -> None:
    out = F["cmd.run"]([sys.executable, "-c", "print('hi')"], ctx=ctx())
    assert isinstance(out, Outcome) and out.retcode == 0 and out.value["stdout"] == "hi\n"
    marker = tmp_path / "x"
    injected = F["cmd.run"](f"echo a; touch {marker}", ctx=ctx())
    assert injected.value["stdout"] == f"a; touch {marker}\n"  # one echo, with the rest as its arguments
    assert not marker.exists()
    chained = F["cmd.run"](f"true && touch {marker} | cat $(touch {marker})", ctx=ctx())
    assert chained.retcode != 0 or not marker.exists()
    assert not marker.exists()
    with pytest.raises(FunctionError, match="shell=True is refused"):
        F["cmd.run"](f"touch {marker}", shell=True, ctx=ctx())
    assert not marker.exists()
    allowed = F["cmd.run"](f"touch {marker} && echo done", shell=True, ctx=ctx(shell=True))
    assert allowed.retcode == 0 and marker.exists()
    failed = F["cmd.run"](
        [sys.executable, "-c", "import sys; sys.stderr.write('bad'); sys.exit(4)"], ctx=ctx()
    )
    assert failed.retcode == 4 and failed.value["stderr"] == "bad"
    missing = F["cmd.run"](["/no/such/program"], ctx=ctx())
    assert missing.retcode == 127


def test_cmd_run_timeout_and_cancel_kill_the_process_group() -> None:
    started = time.monotonic()
    out = F["cmd.run"](["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3, ctx=ctx())
    assert out.retcode == 124 and "timed out" in out.value["stderr"]
    assert time.monotonic() - started < 10
    job = ctx()
    job.cancelled.set()
    assert F["cmd.run"](["sleep", "30"], ctx=job).retcode == 124


def test_file_functions_are_confined_to_their_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "app.conf").write_text("port=80\n")
    secret = tmp_path / "shadow"
    secret.write_text("root:secret\n")
    (root / "link").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path)
    job = ctx(tmp_path)
    conf = str(root / "etc" / "app.conf")
    assert F["file.read"](conf, ctx=job) == "port=80\n"
    assert F["file.exists"](conf, ctx=job) is True
    assert F["file.stat"](conf, ctx=job)["size"] == 8
    assert len(F["file.hash"](conf, ctx=job)) == 64
    assert F["file.write"](str(root / "etc" / "new.conf"), "x=1\n", ctx=job)["bytes"] == 4
    for attack in (
        f"{root}/../shadow",
        f"{root}/etc/../../shadow",
        "../../etc/shadow",
        "/etc/shadow",
        str(root / "link"),
        str(root / "dirlink" / "shadow"),
    ):
        with pytest.raises(FunctionError):
            F["file.read"](attack, ctx=job)
    with pytest.raises(FunctionError, match="symlink"):
        F["file.write"](str(root / "link"), "pwned", ctx=job)
    assert secret.read_text() == "root:secret\n"
    with pytest.raises(FunctionError, match="file_roots"):
        F["file.read"](conf, ctx=ctx())


def test_service_status_falls_back_to_processes_and_control_needs_a_manager() -> None:
    exe = os.path.basename(sys.executable)
    status = F["service.status"](exe, ctx=ctx())
    assert status["running"] is True
    assert F["service.status"]("no-such-daemon", ctx=ctx())["running"] is False
    with pytest.raises(FunctionError, match="bad service name"):
        F["service.status"]("x; reboot", ctx=ctx())


def test_host_facts(tmp_path: Path) -> None:
    assert F["pkg.version"]("bash", ctx=ctx())  # dpkg or rpm knows bash on any Debian or RHEL
    assert F["pkg.version"]("no-such-package-xyz", ctx=ctx()) is None
    assert F["disk.usage"]("/", ctx=ctx())["total"] > 0
    assert "/" in F["disk.usage"](ctx=ctx())
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        port = server.getsockname()[1]
        assert {"proto": "tcp", "address": "127.0.0.1", "port": port} in F["net.ports"](ctx=ctx())
    finally:
        server.close()
    assert os.getpid() in [p["pid"] for p in F["proc.list"](ctx=ctx())]


def test_event_fire_and_beacons_functions() -> None:
    emitted: list[tuple[list[tuple[str, dict[str, Any]]], str | None]] = []
    job = ctx()
    job.emit = lambda events, causation: (emitted.append((events, causation)), [7])[1]
    assert F["event.fire"]("app/started", {"v": 1}, ctx=job) == {"tag": "minion/web01/app/started", "seq": 7}
    assert emitted == [([("app/started", {"v": 1})], "j")]
    with pytest.raises(FunctionError):
        F["event.fire"]("bad tag", ctx=job)

    seen: list[tuple[str, dict[str, Any]]] = []
    manager = BeaconManager(build_slots({"heartbeat": {"interval": 3600}}, BEACONS), seen.extend)

    async def use() -> None:
        loop = asyncio.get_running_loop()
        job.beacons, job.loop = manager, loop
        listing = await asyncio.to_thread(F["beacons.list"], ctx=job)
        assert listing[0]["name"] == "heartbeat" and listing[0]["enabled"] is True
        assert (await asyncio.to_thread(F["beacons.disable"], "heartbeat", ctx=job))["enabled"] is False
        reports = await asyncio.to_thread(F["beacons.fire_now"], "heartbeat", ctx=job)
        assert len(reports) == 1 and seen[-1][0] == "beacon/heartbeat"
        with pytest.raises(FunctionError, match="no beacon"):
            await asyncio.to_thread(F["beacons.enable"], "nope", ctx=job)

    asyncio.run(use())


def test_a_return_too_large_for_one_message_is_reported_not_sent() -> None:
    from minion.executor import Executor
    from reactord.protocol.messages import CommandBody

    def big() -> str:
        return "x" * 100_000

    executor = Executor("web01", {"test.big": big}, {}, workers=1, max_return_bytes=50_000)
    body = CommandBody(
        jid="J1", id="web01", fun="test.big", args=[], kwargs={}, timeout=5, expires=1e12, nonce=b"n"
    )
    try:
        ret = asyncio.run(executor.run(body))
    finally:
        executor.cancel_all()
    assert not ret.success and ret.ret is None and "more than one message carries" in (ret.error or "")
    assert len(ret.to_wire()) < 50_000


def test_file_write_modes_and_read_bounds(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    job = ctx(tmp_path)
    target = str(tmp_path / "root" / "secret.conf")
    F["file.write"](target, "k=v\n", mode=0o600, ctx=job)
    assert os.stat(target).st_mode & 0o777 == 0o600
    F["file.write"](str(tmp_path / "root" / "b"), "x", mode="0640", ctx=job)
    with pytest.raises(FunctionError, match="octal"):
        F["file.write"](target, "x", mode="rw-r--r--", ctx=job)
    with pytest.raises(FunctionError, match="text"):
        F["file.write"](target, 42, ctx=job)
    assert F["file.read"](target, max_bytes=-1, ctx=job) == ""
    assert F["file.read"](target, max_bytes=2, ctx=job) == "k="
