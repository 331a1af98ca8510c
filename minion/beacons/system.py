"""``load`` and ``memory``: the host's load averages and memory use, from /proc."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from minion.beacons.base import Report, over
from minion.options import Options


class LoadBeacon:
    """1, 5 and 15-minute load averages.

    Options: ``thresholds`` (``{load1: 4, load5: 3, load15: 2}``; any crossed sets ``over``),
    ``per_cpu`` (divide by the CPU count before comparing; default false).
    Data: ``load1 load5 load15 cpus over``. With thresholds, onchange reports only when
    ``over`` changes.
    """

    default_interval: ClassVar[float] = 10.0

    def __init__(self, options: Options) -> None:
        self.thresholds = options.numbers("thresholds")
        unknown = set(self.thresholds) - {"load1", "load5", "load15"}
        if unknown:
            raise options.fail("thresholds", f"unknown key {sorted(unknown)[0]!r} (load1, load5, load15)")
        self.per_cpu = options.boolean("per_cpu", False)

    def poll(self) -> list[Report]:
        parts = Path("/proc/loadavg").read_text().split()
        cpus = os.cpu_count() or 1
        loads = {"load1": float(parts[0]), "load5": float(parts[1]), "load15": float(parts[2])}
        scale = cpus if self.per_cpu else 1
        hot = any(over(loads[k] / scale, v) for k, v in self.thresholds.items())
        return [Report(None, {**loads, "cpus": cpus, "over": hot}, state=hot if self.thresholds else None)]


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[name] = int(fields[0]) * (1024 if len(fields) > 1 else 1)
    return out


class MemoryBeacon:
    """Memory and swap use.

    Options: ``threshold`` (percent of memory used that sets ``over``),
    ``swap_threshold`` (the same for swap).
    Data: ``total available used percent swap_total swap_used swap_percent over``.
    """

    default_interval: ClassVar[float] = 30.0

    def __init__(self, options: Options) -> None:
        self.threshold = options.number("threshold", None)
        self.swap_threshold = options.number("swap_threshold", None)

    def poll(self) -> list[Report]:
        info = meminfo()
        total, available = info.get("MemTotal", 0), info.get("MemAvailable", info.get("MemFree", 0))
        swap_total, swap_free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
        used, swap_used = total - available, swap_total - swap_free
        percent = round(100.0 * used / total, 1) if total else 0.0
        swap_percent = round(100.0 * swap_used / swap_total, 1) if swap_total else 0.0
        hot = over(percent, self.threshold) or over(swap_percent, self.swap_threshold)
        data = {
            "total": total,
            "available": available,
            "used": used,
            "percent": percent,
            "swap_total": swap_total,
            "swap_used": swap_used,
            "swap_percent": swap_percent,
            "over": hot,
        }
        limited = self.threshold is not None or self.swap_threshold is not None
        return [Report(None, data, state=hot if limited else None)]
