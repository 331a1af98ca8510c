"""Batches: how many of a job's minions run at once (``run -b 10``, ``-b 25%``, ``batch:``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 100_000
_BATCH = re.compile(r"\s*([0-9]{1,6}(?:\.[0-9]+)?)\s*(%?)\s*")


@dataclass(frozen=True, slots=True)
class Batch:
    """How many minions of a job run at once: ``size``, or ``percent`` of those targeted."""

    size: int = 0
    percent: float = 0.0
    wait: float = 0.0  # seconds a freed slot stays empty before the next minion starts
    failhard: bool = False  # start no other minion after the first failure

    def slots(self, count: int) -> int:
        if self.size:
            return self.size
        return max(1, math.ceil(count * self.percent / 100))

    def public(self) -> dict[str, Any]:
        return {"size": self.size, "percent": self.percent, "wait": self.wait, "failhard": self.failhard}

    @classmethod
    def from_public(cls, value: dict[str, Any]) -> Batch:
        return cls(int(value["size"]), float(value["percent"]), float(value["wait"]), bool(value["failhard"]))


def parse_batch(value: Any, *, wait: float = 0.0, failhard: bool = False) -> Batch:
    """``10`` (minions at a time) or ``"25%"`` (of the targeted minions); ``ValueError`` else."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _BATCH.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"a batch is a count (10) or a percentage (25%), got {value!r}")
    number, percent = float(match.group(1)), bool(match.group(2))
    if not math.isfinite(wait) or not 0 <= wait <= 3600:
        raise ValueError(f"a batch wait is between 0 and 3600 seconds, got {wait:g}")
    if percent:
        if not 0 < number <= 100:
            raise ValueError(f"a batch percentage is more than 0% and at most 100%, got {value!r}")
        return Batch(percent=number, wait=wait, failhard=failhard)
    if number != int(number) or not 1 <= number <= MAX_BATCH:
        raise ValueError(f"a batch size is a whole number from 1 to {MAX_BATCH}, got {value!r}")
    return Batch(size=int(number), wait=wait, failhard=failhard)
