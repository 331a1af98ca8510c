"""``process`` and ``service``: named processes present or absent, and service units' state."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from minion.beacons.base import Report, subject
from minion.options import Options


def process_table() -> list[dict[str, Any]]:
    """Every process: pid, name (comm), the basename of argv[0], and the command line."""
    table = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        args = [a.decode(errors="replace") for a in argv if a]
        table.append(
            {
                "pid": int(entry.name),
                "name": comm,
                "exe": os.path.basename(args[0]) if args else comm,
                "cmdline": " ".join(args)[:512],
            }
        )
    return table


def matching(table: list[dict[str, Any]], name: str) -> list[int]:
    return sorted(p["pid"] for p in table if name in (p["name"], p["exe"]))


class ProcessBeacon:
    """Named processes: running or not, and how many.

    Options: ``processes`` (names, matched against the process name or argv[0]'s basename).
    Data: ``name running count pids`` (the first 20); subject: the name.
    Onchange reports when ``running`` or ``count`` changes.
    """

    default_interval: ClassVar[float] = 10.0

    def __init__(self, options: Options) -> None:
        self.names = options.text_list("processes", required=True)

    def poll(self) -> list[Report]:
        table = process_table()
        reports = []
        for name in self.names:
            pids = matching(table, name)
            data = {"name": name, "running": bool(pids), "count": len(pids), "pids": pids[:20]}
            reports.append(Report(subject(name), data, state=(data["running"], data["count"])))
        return reports


def systemd_available() -> bool:
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def unit_state(name: str, timeout: float = 5.0) -> dict[str, Any]:
    """ActiveState, SubState and UnitFileState of a unit, from ``systemctl show`` (argv, no shell)."""
    unit = name if "." in name else f"{name}.service"
    result = subprocess.run(
        ["systemctl", "show", unit, "--property=ActiveState,SubState,UnitFileState,LoadState"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {
        "state": props.get("ActiveState", "unknown"),
        "sub_state": props.get("SubState", ""),
        "enabled": props.get("UnitFileState", ""),
        "loaded": props.get("LoadState", "") == "loaded",
    }


class ServiceBeacon:
    """Services: active, inactive or failed.

    Options: ``services`` (unit names; ``nginx`` means ``nginx.service``), ``method``
    (``auto``: systemd when it runs the host, else by process name; ``systemd``; ``process``).
    Data: ``name running state sub_state method``; subject: the name. Onchange reports when
    ``running`` or ``state`` changes.
    """

    default_interval: ClassVar[float] = 10.0

    def __init__(self, options: Options) -> None:
        self.names = options.text_list("services", required=True)
        self.method = options.text("method", "auto") or "auto"
        if self.method not in ("auto", "systemd", "process"):
            raise options.fail("method", "expected auto, systemd or process")

    def poll(self) -> list[Report]:
        use_systemd = self.method == "systemd" or (self.method == "auto" and systemd_available())
        table = [] if use_systemd else process_table()
        reports = []
        for name in self.names:
            if use_systemd:
                unit = unit_state(name)
                data = {"name": name, "running": unit["state"] == "active", **unit, "method": "systemd"}
            else:
                pids = matching(table, name)
                data = {
                    "name": name,
                    "running": bool(pids),
                    "state": "active" if pids else "inactive",
                    "sub_state": "running" if pids else "dead",
                    "method": "process",
                }
            reports.append(Report(subject(name), data, state=(data["running"], data["state"])))
        return reports
