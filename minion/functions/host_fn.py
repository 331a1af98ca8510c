"""``pkg.version``, ``disk.usage``, ``net.ports``, ``proc.list``: what is on the host."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from minion.beacons.disk import mounts, usage
from minion.beacons.processes import process_table
from minion.errors import FunctionError
from minion.functions.context import JobContext

_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._:-]{0,200}")


def pkg_version(name: str, *, ctx: JobContext) -> str | None:
    """The installed version of a package (dpkg or rpm), or None when it is not installed."""
    if not _PACKAGE.fullmatch(name or ""):
        raise FunctionError(f"bad package name {name!r}")
    if shutil.which("dpkg-query"):
        argv = ["dpkg-query", "-W", "-f=${Status}|${Version}", name]
    elif shutil.which("rpm"):
        argv = ["rpm", "-q", "--qf", "install ok installed|%{VERSION}-%{RELEASE}", name]
    else:
        raise FunctionError("no package manager found (dpkg or rpm)")
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=min(30.0, ctx.remaining() or 30.0), check=False
    )
    status, _, version = result.stdout.partition("|")
    return version.strip() or None if result.returncode == 0 and "installed" in status else None


def disk_usage(path: str | None = None, *, ctx: JobContext) -> dict[str, Any]:
    """Use of one mount (``path``) or of every real file system, by mount point."""
    if path is not None:
        return usage(path)
    out = {}
    for mount in mounts():
        try:
            out[mount] = usage(mount)
        except OSError:
            continue
    return out


def net_ports(*, ctx: JobContext) -> list[dict[str, Any]]:
    """Listening TCP ports and bound UDP ports: ``{proto, address, port}``."""
    found = []
    for proto, name in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if name == "tcp" and state != "0A":
                continue
            address, port = _address(local, proto.endswith("6"))
            found.append({"proto": name, "address": address, "port": port})
    return sorted(
        {(f["proto"], f["address"], f["port"]): f for f in found}.values(),
        key=lambda f: (f["proto"], f["port"], f["address"]),
    )


def _address(text: str, v6: bool) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if v6:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return str(ipaddress.IPv6Address(words)), int(port, 16)
    return ".".join(str(b) for b in raw[::-1]), int(port, 16)


def proc_list(name: str | None = None, *, ctx: JobContext) -> list[dict[str, Any]]:
    """Processes (pid, name, command line), all or those named ``name``."""
    table = process_table()
    if name is not None:
        table = [p for p in table if name in (p["name"], p["exe"])]
    return sorted(table, key=lambda p: p["pid"])
