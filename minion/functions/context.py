"""What a running function may ask of the agent: its deadline, cancellation and services."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minion.beacons.runner import BeaconManager


@dataclass(frozen=True, slots=True)
class Outcome:
    """A function's value with an exit code: ``success`` is ``retcode == 0``."""

    value: Any
    retcode: int


@dataclass(frozen=True, slots=True)
class Settings:
    """``functions:`` in minion.yaml, as functions see it."""

    shell: bool = False
    file_roots: tuple[Path, ...] = ()
    cmd_timeout: float = 60.0
    max_output: int = 128 * 1024


@dataclass(slots=True)
class JobContext:
    jid: str
    minion_id: str
    deadline: float
    grains: Mapping[str, Any]
    functions: Mapping[str, Callable[..., Any]]
    settings: Settings = field(default_factory=Settings)
    emit: Callable[[list[tuple[str, dict[str, Any]]], str | None], list[int]] | None = None
    beacons: BeaconManager | None = None
    loop: asyncio.AbstractEventLoop | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the job was cancelled (timed out) meanwhile."""
        return self.cancelled.wait(max(0.0, seconds))

    def on_loop(self, coro: Any) -> Any:
        """Run a coroutine on the agent's event loop and wait for it (from a job thread)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.remaining() or None)
