"""The demo behind ``make run``: a master and one local minion, and what happens between them.

The daemons never outlive the demo. SIGINT, SIGTERM and SIGHUP are counted as requests to
stop, never raised as exceptions, so no signal can cut the stop short: the first request stops
the minion and then the master, the second hurries that (both stop at once, SIGKILL after a
short grace), the third kills them. Output is best effort: once the reader of stdout is gone
(`make run | tee log` and Ctrl-C kills tee, the terminal closed), lines are dropped and the stop
goes on. On Linux the kernel also sends each daemon SIGTERM when the demo dies, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from reactord.base import jsonable
from reactord.base.config import load_master_config
from reactord.control import ControlClient
from reactord.protocol.errors import RequestError
from reactord.protocol.localsock import LocalClient
from reactord.scaffold import init_setup
from reactord.watcher import BusWatcher

DEMO_MINION = "demo-minion"
GRACE = 15.0  # seconds a daemon gets to stop on SIGTERM before SIGKILL
HURRIED_GRACE = 3.0  # the same, once a second stop request hurried the stop
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Console:
    """The demo's lines on stdout, from every thread; a reader that went away never stops the demo.

    After the first failed write (EPIPE once tee died of the Ctrl-C, EIO once the terminal
    closed, a closed file) every line is dropped, and stdout is pointed at /dev/null so that the
    interpreter's own flush at exit cannot fail either (that would turn exit 0 into 120).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._open = True

    def say(self, prefix: str, line: str) -> None:
        with self._lock:
            if not self._open:
                return
            try:
                self._stream.write(f"{prefix:>6} | {line.rstrip()}\n")
                self._stream.flush()
            except (OSError, ValueError):
                self._open = False
                self._point_at_devnull()

    def close(self) -> None:
        """Drop every later line: daemon threads must not write while the interpreter shuts down."""
        with self._lock:
            self._open = False

    def _point_at_devnull(self) -> None:
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError):  # no file descriptor behind the stream: nothing to flush at exit
            return
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


class StopRequests:
    """Requests to stop, counted: what SIGINT, SIGTERM and SIGHUP become once installed.

    A handler that raises (KeyboardInterrupt) lands wherever the main thread happens to be, in
    the stop too: a second Ctrl-C used to skip stopping the daemons. A count is only read, at the
    points the demo chooses. Once the daemons are stopped the signals are ignored, so a late
    Ctrl-C is never a traceback either.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.count = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    def install(self) -> None:
        """Route the stop signals here (from the main thread, as Python requires).

        The wakeup fd ends a ``wait`` at once even when the kernel gave the signal to another
        thread (Python runs the handler on the main thread only, at its next chance).
        """
        for sig in self.SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)

    def request(self) -> None:
        self.count += 1
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def ignore_late(self) -> None:
        """Ignore the stop signals from now on, once the daemons are stopped.

        While Python shuts down it puts the default handlers back; a Ctrl-C in that instant
        would turn exit 0 into a death by SIGINT. Ignored signals stay ignored.
        """
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or sooner when a request (or a signal) arrives."""
        select.select([self._wake_read], [], [], timeout)
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request()


class _StopRequested(Exception):
    """Raised by the demo itself, at a point it checks, when a stop was requested."""


class _DaemonExited(Exception):
    """Raised by the demo itself when the master or the minion exited without being asked."""


class Daemons:
    """The demo's master and minion: started in order, watched, stopped in reverse order."""

    def __init__(self, requests: StopRequests, console: Console) -> None:
        self.requests = requests
        self.console = console
        self.procs: list[tuple[str, subprocess.Popen[str]]] = []
        self._preexec = _die_with_parent()

    def spawn(self, name: str, args: list[str]) -> None:
        """Start ``python -m args`` and show its output; from the main thread (``_die_with_parent``)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # the terminal's Ctrl-C reaches the demo only; it stops them in order
            preexec_fn=self._preexec,
        )
        self.procs.append((name, proc))
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            # Read to the end even when nobody sees the lines: a daemon blocked on a full pipe
            # could not stop.
            for line in stream:
                self.console.say(name, line)

        threading.Thread(target=pump, name=f"{name}-output", daemon=True).start()
        self.console.say("demo", f"started the {name} (pid {proc.pid})")

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                value = check()
            except RequestError:
                value = None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} did not happen within {timeout:g}s")
            self.requests.wait(0.2)  # polling the master for a demo banner; a stop request ends it

    def watch(self) -> NoReturn:
        """Wait for a stop request or for a daemon that exits on its own."""
        while True:
            self.check()
            self.requests.wait(0.5)

    def check(self) -> None:
        if self.requests.count:
            raise _StopRequested
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise _DaemonExited(f"the {name} exited on its own (exit {proc.returncode})")

    def stop(self, grace: float = GRACE, hurried_grace: float = HURRIED_GRACE) -> None:
        """Stop the minion, then the master: SIGTERM, then SIGKILL once ``grace`` has passed.

        Stop requests after the first hurry this and never skip it: the second stops every
        daemon at once and cuts the grace to ``hurried_grace``; the third sends SIGKILL. Each
        daemon gets one SIGTERM only: a second one would find its handlers gone at the end of
        its orderly stop and kill it there. Each signal goes out before the line that tells of it.
        """
        order = list(reversed(self.procs))  # the minion first, while its master still listens
        signalled: set[int] = set()

        def terminate(procs: list[tuple[str, subprocess.Popen[str]]]) -> None:
            for _, proc in procs:
                if proc.pid not in signalled and proc.poll() is None:
                    proc.terminate()
                signalled.add(proc.pid)

        hurried = False
        for index, (name, proc) in enumerate(order):
            terminate([(name, proc)])
            if index == 0:
                self.console.say("demo", "stopping (Ctrl-C again hurries this, a third time kills)")
            deadline = time.monotonic() + (hurried_grace if hurried else grace)
            while proc.poll() is None:
                urgency = self.requests.count - 1
                if urgency >= 2 or time.monotonic() >= deadline:
                    proc.kill()
                    self.console.say("demo", f"SIGKILL to the {name}")
                    break
                if urgency == 1 and not hurried:
                    hurried = True
                    terminate(order)
                    deadline = min(deadline, time.monotonic() + hurried_grace)
                    self.console.say("demo", f"hurrying: all stop at once, SIGKILL after {hurried_grace:g}s")
                self.requests.wait(0.1)  # woken at once by a further request
            code = proc.wait()
            self.console.say("demo", f"{name} stopped (exit {code})")


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn after which Linux sends the daemon SIGTERM when the demo dies, even by SIGKILL.

    The daemons run in their own session, so nothing else would reach them: a killed demo left
    them running, holding their ports. The kernel sends the signal when the *thread* that forked
    the child ends, so spawn from the main thread only. Other systems have no such thing (None).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def preexec() -> None:  # runs in the child between fork and exec: resolved beforehand, no imports
        if prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)  # the demo died before prctl took hold: no signal will come, so never start

    return preexec


def run_demo(directory: Path, base_port: int) -> int:
    console = Console(sys.stdout)
    if not (directory / "master.yaml").exists():
        result = init_setup(
            directory,
            minion_id=DEMO_MINION,
            event_port=base_port,
            command_port=base_port + 1,
            key_port=base_port + 2,
            accept_local=True,
            http_port=base_port + 3,
        )
        console.say(
            "demo", f"wrote a local setup in {directory}/ (master key {result.master_finger[:23]}...)"
        )
    config = load_master_config(str(directory / "master.yaml"))
    http_port = [int(config.http.address.rpartition(":")[2])] if config.http.address else []
    for port in (config.command_port, config.event_port, *http_port):
        if _port_busy(port):
            console.say("demo", f"port {port} is in use: is another master running? stop it first")
            return 1
    requests = StopRequests()
    requests.install()
    daemons = Daemons(requests, console)
    try:
        _show(directory, config.bus_path, ControlClient(config.control_path, timeout=15), daemons)
    except _StopRequested:
        return 0
    except (_DaemonExited, TimeoutError, RequestError) as exc:
        console.say("demo", str(exc))
        return 1
    finally:
        daemons.stop()
        requests.ignore_late()
        console.close()


def _show(directory: Path, bus_path: Path, client: ControlClient, daemons: Daemons) -> NoReturn:
    """Start both daemons, show a job and a reaction, then watch until a stop request."""
    say = daemons.console.say
    started = time.time()
    daemons.spawn("master", ["reactord", "master", "-c", str(directory / "master.yaml")])
    daemons.wait_for("the master start", lambda: client.call("ping"), 20)
    daemons.spawn("minion", ["minion", "-c", str(directory / "minion.yaml")])
    daemons.wait_for(
        "the minion coming up",
        lambda: any(m["presence"] == "up" and m["last_seen"] > started for m in client.call("minions")),
        30,
    )
    _watch_bus(bus_path, client, say)
    say("demo", "master and minion are up; running `reactord run '*' test.ping`")
    job = client.call("run", target="*", target_type="glob", fun="test.ping", args=[], kwargs={}, timeout=10)
    for minion_id, ret in job["returns"].items():
        say("demo", f"{minion_id}: {ret.get('return') if ret['success'] else ret.get('error')}")
    say("demo", "the minion sends app/deployed; the example rule `deployed` reacts")
    minion_socket = LocalClient(_minion_socket(directory), timeout=10, daemon="minion")
    minion_socket.call("event.send", tag="app/deployed", data={"version": "1.0.0"}, count=1)
    say("demo", f"try: reactord event watch -c {directory}/master.yaml   (Ctrl-C stops both)")
    config = load_master_config(str(directory / "master.yaml"))
    if config.http.address:
        say("demo", f"dashboard: http://{config.http.address}/ui/ (token: {directory}/admin.token)")
    daemons.watch()


def _watch_bus(bus_path: Path, client: ControlClient, say: Callable[[str, str], None]) -> None:
    """Print every event on the master's bus from now on (a daemon thread)."""
    watcher = BusWatcher(bus_path, client)
    watcher.wait_live()

    def show() -> None:
        for item in watcher.events():
            data = jsonable.dumps(item["data"])
            say("event", f"{item['tag']}  from {item['source']}  {data[:100]}")

    threading.Thread(target=show, name="bus-watch", daemon=True).start()


def _minion_socket(directory: Path) -> Path:
    from reactord.protocol.configfile import read_yaml_mapping

    state = read_yaml_mapping(directory / "minion.yaml").get("state_dir", "state")
    path = Path(str(state))
    return (path if path.is_absolute() else directory / path) / "minion.sock"


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
