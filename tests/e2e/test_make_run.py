"""`make run` on a fresh copy of the tree shows a live master and minion, and Ctrl-C stops both."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support import ROOT, free_ports, wait_until


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
