"""What a running function may ask of the agent: its deadline, cancellation and services."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class JobContext:
    jid: str
    minion_id: str
    deadline: float
    grains: Mapping[str, Any]
    functions: Mapping[str, Callable[..., Any]]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the job was cancelled (timed out) meanwhile."""
        return self.cancelled.wait(max(0.0, seconds))
