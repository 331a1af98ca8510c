"""`make run` on a fresh copy of the tree shows a live master and minion, and Ctrl-C stops both.

The daemons never outlive the demo: not after an impatient double Ctrl-C, not when the reader
of its output went away first (`make run | tee log`), not when the demo itself is SIGKILLed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reactord.demo import Console, Daemons, StopRequests
from tests.support import ROOT, free_ports, run_cli, wait_until


def _fresh_copy(target: Path) -> None:
    """The files a clone would have: tracked and new files, nothing ignored (no .venv)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_run_starts_a_working_master_and_minion_and_stops_cleanly(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is required")
    clone = tmp_path / "clone"
    _fresh_copy(clone)
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        ["make", "run", f"DEMO_PORT={port}", "PYTHON=python3"],
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REACTORD_CONFIG")},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stream = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("demo-minion: True" in line for line in lines), 300, "the demo ping")
        text = "".join(lines)
        assert "master and minion are up" in text
        assert "minion demo-minion is up" in text  # the master's own log, shown by the demo
        assert (clone / ".venv" / "bin" / "reactord").exists()
        os.killpg(proc.pid, signal.SIGINT)
        # make itself dies of the SIGINT after its child (the demo) has finished cleanly
        assert proc.wait(timeout=60) in (0, -signal.SIGINT), "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    stream.close()
    text = "".join(lines)
    assert "master stopped (exit 0)" in text, text[-3000:]
    assert "minion stopped (exit 0)" in text, text[-3000:]


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie left for a reaper that never comes counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _demo_setup(directory: Path) -> list[int]:
    """What the demo writes on first use (``init --accept-local``), on free ports; they are returned."""
    ports = free_ports(4)
    event, command, key, http = (str(port) for port in ports)
    result = run_cli(
        "init",
        str(directory),
        "--minion-id",
        "demo-minion",
        "--accept-local",
        "--event-port",
        event,
        "--command-port",
        command,
        "--key-port",
        key,
        "--http-port",
        http,
    )
    assert result.returncode == 0, result.stderr
    return ports


class DemoRun:
    """``reactord demo`` on a setup, its output on a pipe this test owns and reads without blocking."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactord", "demo", str(directory)],
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "REACTORD_CONFIG"},
        )
        os.close(write_fd)
        self.read_fd: int | None = read_fd
        self.text = ""

    def output(self) -> str:
        while self.read_fd is not None:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        return self.text

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        wait_until(lambda: needle in self.output() or self.proc.poll() is not None, timeout, repr(needle))
        assert needle in self.text, self.text[-3000:]

    def wait_up(self) -> dict[str, int]:
        """Wait for the demo's whole show; return the pids of its master and minion."""
        self.wait_for("try: reactord event watch")
        pids = {name: int(pid) for name, pid in re.findall(r"started the (\w+) \(pid (\d+)\)", self.text)}
        assert set(pids) == {"master", "minion"}, self.text[-3000:]
        assert all(_alive(pid) for pid in pids.values())
        return pids

    def close_reader(self) -> None:
        """Go away as ``tee`` does when the same Ctrl-C kills it: the demo's stdout is a broken pipe."""
        assert self.read_fd is not None
        os.close(self.read_fd)
        self.read_fd = None

    def wait_exit(self, timeout: float = 60) -> int:
        """The demo's exit code, reading its output meanwhile so that it never blocks on the pipe."""
        wait_until(self._exited, timeout, "the demo to exit")
        return self.proc.wait()

    def _exited(self) -> bool:
        self.output()
        return self.proc.poll() is not None

    def close(self, pids: dict[str, int]) -> None:
        """Kill whatever a failed test left behind: the demo, and its daemons if still ours."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
        for pid in pids.values():
            try:
                ours = str(self.directory) in Path(f"/proc/{pid}/cmdline").read_text()
            except OSError:
                continue
            if ours:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_two_quick_ctrl_c_stop_both_daemons_and_free_the_ports_for_the_next_demo(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    ports = _demo_setup(directory)
    demo = DemoRun(directory)
    pids: dict[str, int] = {}
    try:
        pids = demo.wait_up()
        demo.proc.send_signal(signal.SIGINT)
        demo.wait_for("demo | stopping")
        demo.proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C, while the demo stops
        assert demo.wait_exit() == 0, demo.text[-3000:]
    finally:
        demo.close(pids)
    assert [name for name, pid in pids.items() if _alive(pid)] == [], demo.text[-3000:]
    assert "Traceback" not in demo.text, demo.text[-3000:]

    # The ports are free again: the next demo on the same setup starts, and one Ctrl-C stops it.
    again = DemoRun(directory)
    pids = {}
    try:
        pids = again.wait_up()
        again.proc.send_signal(signal.SIGINT)
        assert again.wait_exit() == 0, again.text[-3000:]
    finally:
        again.close(pids)
    assert "in use" not in again.text
    assert "minion stopped (exit 0)" in again.text, again.text[-3000:]
    assert "master stopped (exit 0)" in again.text, again.text[-3000:]
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert all(_port_free(port) for port in ports)


@pytest.mark.slow
def test_ctrl_c_after_the_reader_of_the_output_went_away_still_stops_both_daemons(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    ports = _demo_setup(directory)
    demo = DemoRun(directory)
    pids: dict[str, int] = {}
    try:
        pids = demo.wait_up()
        demo.close_reader()
        demo.proc.send_signal(signal.SIGINT)
        # 0, not 1 from a BrokenPipeError nor 120 from a failed flush at exit
        assert demo.wait_exit() == 0
    finally:
        demo.close(pids)
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert all(_port_free(port) for port in ports)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_demo_as_ctrl_c_does(tmp_path: Path, signum: signal.Signals) -> None:
    directory = tmp_path / "demo"
    _demo_setup(directory)
    demo = DemoRun(directory)
    pids: dict[str, int] = {}
    try:
        pids = demo.wait_up()
        demo.proc.send_signal(signum)
        assert demo.wait_exit() == 0, demo.text[-3000:]
    finally:
        demo.close(pids)
    assert "minion stopped (exit 0)" in demo.text, demo.text[-3000:]
    assert "master stopped (exit 0)" in demo.text, demo.text[-3000:]
    assert [name for name, pid in pids.items() if _alive(pid)] == []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_daemons_of_a_killed_demo_stop_by_themselves(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    ports = _demo_setup(directory)
    demo = DemoRun(directory)
    pids: dict[str, int] = {}
    try:
        pids = demo.wait_up()
        demo.proc.kill()  # no handler, no cleanup: only the kernel can tell the daemons
        assert demo.proc.wait() == -signal.SIGKILL
        wait_until(
            lambda: not any(_alive(pid) for pid in pids.values()),
            30,
            "the daemons of the killed demo to stop",
        )
    finally:
        demo.close(pids)
    assert all(_port_free(port) for port in ports)


_STUBBORN = (
    "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); signal.pause()"
)


def _stubborn_daemons() -> list[tuple[str, subprocess.Popen[str]]]:
    """A master and a minion that ignore SIGTERM: only SIGKILL ends them."""
    procs = []
    for name in ("master", "minion"):
        proc = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"  # SIGTERM is ignored from here on
        procs.append((name, proc))
    return procs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("requests", [2, 3])
def test_a_further_stop_request_hurries_the_stop_and_never_skips_it(requests: int) -> None:
    """The second request cuts the grace (600s here, beyond the test's timeout); the third kills."""
    stop_requests, out = StopRequests(), io.StringIO()
    daemons = Daemons(stop_requests, Console(out))
    daemons.procs.extend(_stubborn_daemons())
    stop_requests.request()  # the request that began the stop

    def impatient() -> None:
        wait_until(lambda: "stopping" in out.getvalue(), 30, "the stop to begin")
        for _ in range(requests - 1):
            stop_requests.request()

    helper = threading.Thread(target=impatient)
    helper.start()
    try:
        daemons.stop(grace=600, hurried_grace=600 if requests == 3 else 0.5)
    finally:
        helper.join(30)
        for _, proc in daemons.procs:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    assert [proc.returncode for _, proc in daemons.procs] == [-signal.SIGKILL, -signal.SIGKILL]
    assert "minion stopped (exit -9)" in out.getvalue()
    assert "master stopped (exit -9)" in out.getvalue()


def test_the_console_drops_its_lines_once_the_reader_is_gone() -> None:
    read_fd, write_fd = os.pipe()
    stream = open(write_fd, "w")
    console = Console(stream)
    console.say("demo", "seen")
    assert os.read(read_fd, 100) == b"  demo | seen\n"
    os.close(read_fd)
    console.say("demo", "the pipe is broken: no exception")
    console.say("minion", "nor for the lines after it")
    assert os.readlink(f"/proc/self/fd/{write_fd}") == os.devnull
    stream.write("left over")
    stream.close()  # the flush goes to /dev/null now, as the interpreter's own at exit would
