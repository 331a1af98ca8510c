"""The demo behind ``make run``: a master and one local minion, and what happens between them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reactord import jsonable
from reactord.config import load_master_config
from reactord.control import ControlClient
from reactord.protocol.errors import RequestError
from reactord.protocol.localsock import LocalClient
from reactord.scaffold import init_setup
from reactord.watcher import BusWatcher

DEMO_MINION = "demo-minion"


def _say(prefix: str, line: str) -> None:
    sys.stdout.write(f"{prefix:>6} | {line.rstrip()}\n")
    sys.stdout.flush()


def _spawn(name: str, args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # Ctrl-C reaches the demo only; it stops the daemons in order
    )
    assert proc.stdout is not None
    stream = proc.stdout

    def pump() -> None:
        for line in stream:
            _say(name, line)

    threading.Thread(target=pump, name=f"{name}-output", daemon=True).start()
    return proc


def _wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except RequestError:
            value = None
        if value:
            return value
        time.sleep(0.2)  # polling the master for a demo banner; nothing waits on this
    raise TimeoutError(f"{what} did not happen within {timeout:g}s")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(directory: Path, base_port: int) -> int:
    if not (directory / "master.yaml").exists():
        result = init_setup(
            directory,
            minion_id=DEMO_MINION,
            event_port=base_port,
            command_port=base_port + 1,
            key_port=base_port + 2,
            accept_local=True,
        )
        _say("demo", f"wrote a local setup in {directory}/ (master key {result.master_finger[:23]}...)")
    config = load_master_config(str(directory / "master.yaml"))
    for port in (config.command_port, config.event_port):
        if _port_busy(port):
            _say("demo", f"port {port} is in use: is another master running? stop it first")
            return 1
    client = ControlClient(config.control_path, timeout=15)
    procs: list[subprocess.Popen[str]] = []
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # stop the daemons in order, as on Ctrl-C
    started = time.time()
    try:
        procs.append(_spawn("master", ["reactord", "master", "-c", str(directory / "master.yaml")]))
        _wait_for("the master start", lambda: client.call("ping"), 20)
        procs.append(_spawn("minion", ["minion", "-c", str(directory / "minion.yaml")]))
        _wait_for(
            "the minion coming up",
            lambda: any(m["presence"] == "up" and m["last_seen"] > started for m in client.call("minions")),
            30,
        )
        _watch_bus(config.bus_path, client)
        _say("demo", "master and minion are up; running `reactord run '*' test.ping`")
        job = client.call(
            "run", target="*", target_type="glob", fun="test.ping", args=[], kwargs={}, timeout=10
        )
        for minion_id, ret in job["returns"].items():
            _say("demo", f"{minion_id}: {ret.get('return') if ret['success'] else ret.get('error')}")
        _say("demo", "the minion sends app/deployed; the example rule `deployed` reacts")
        minion_socket = LocalClient(_minion_socket(directory), timeout=10, daemon="minion")
        minion_socket.call("event.send", tag="app/deployed", data={"version": "1.0.0"}, count=1)
        _say("demo", f"try: reactord event watch -c {directory}/master.yaml   (Ctrl-C stops both)")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)  # supervising: wake up to notice a child that exited
        _say("demo", "a daemon exited on its own; stopping")
        return 1
    except KeyboardInterrupt:
        _say("demo", "stopping master and minion")
        return 0
    except TimeoutError as exc:
        _say("demo", str(exc))
        return 1
    finally:
        _stop(procs)


def _watch_bus(bus_path: Path, client: ControlClient) -> None:
    """Print every event on the master's bus from now on (a daemon thread)."""
    watcher = BusWatcher(bus_path, client)
    watcher.wait_live()

    def show() -> None:
        for item in watcher.events():
            data = jsonable.dumps(item["data"])
            _say("event", f"{item['tag']}  from {item['source']}  {data[:100]}")

    threading.Thread(target=show, name="bus-watch", daemon=True).start()


def _minion_socket(directory: Path) -> Path:
    from reactord.protocol.configfile import read_yaml_mapping

    state = read_yaml_mapping(directory / "minion.yaml").get("state_dir", "state")
    path = Path(str(state))
    return (path if path.is_absolute() else directory / path) / "minion.sock"


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    """Stop the minion, then the master; each gets SIGTERM and 15 seconds."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for name, proc in reversed(list(zip(("master", "minion"), procs, strict=False))):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            _say("demo", f"{name} stopped (exit {code})")
    finally:
        signal.signal(signal.SIGINT, previous)


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
