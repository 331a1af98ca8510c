"""A master running in-process on real 127.0.0.1 sockets, in its own thread and event loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reactord.base.config import load_master_config
from reactord.master import Master
from tests.support import MasterThread, free_ports


@pytest.fixture
def master_thread(tmp_path: Path) -> Iterator[MasterThread]:
    event, command, key = free_ports(3)
    path = tmp_path / "master.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interface": "127.0.0.1",
                "event_port": event,
                "command_port": command,
                "key_port": key,
                "presence": {"heartbeat": "0.2s", "suspect_after": "1s", "down_after": "2s"},
            }
        )
    )
    runner = MasterThread(Master(load_master_config(str(path))))
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
