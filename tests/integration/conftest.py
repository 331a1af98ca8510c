"""A master running in-process on real 127.0.0.1 sockets, in its own thread and event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from reactord.config import load_master_config
from reactord.master import Master
from tests.support import free_ports, wait_until

T = TypeVar("T")


class MasterThread:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="master", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.master.run())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.master.control.path.exists(), 10, "the master to listen")

    def call(self, coro: Awaitable[T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def run_sync(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)

        return self.call(call())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.master.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive(), "the master did not stop"
        if self.error is not None:
            raise self.error


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
