"""Grains: the facts a minion reports about its host (sent in ``hello``, used for targeting)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import platform
import socket
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from reactord.protocol import __version__

_SIOCGIFADDR = 0x8915


def collect(static: dict[str, Any] | None = None) -> dict[str, Any]:
    """All grains of this host; ``static`` grains from the config win over detected ones."""
    hostname = socket.gethostname()
    release = _os_release()
    grains: dict[str, Any] = {
        "os": platform.system(),
        "os_family": release.get("ID_LIKE", release.get("ID", platform.system())).split()[0],
        "osrelease": release.get("VERSION_ID", ""),
        "osfullname": release.get("PRETTY_NAME", platform.platform()),
        "kernel": platform.system(),
        "kernelrelease": platform.release(),
        "arch": platform.machine(),
        "hostname": hostname,
        "fqdn": _fqdn(hostname),
        "ipv4": _ipv4_addresses(),
        "ipv6": _ipv6_addresses(),
        "num_cpus": os.cpu_count() or 1,
        "mem_total": _mem_total_mib(),
        "pythonversion": platform.python_version(),
        "pythonexecutable": sys.executable,
        "reactord_version": __version__,
    }
    grains.update(static or {})
    return grains


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip().strip('"')
        break
    return out


def _fqdn(hostname: str) -> str:
    """The canonical name, without letting a broken resolver stall the minion's start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(socket.getfqdn, hostname)
        try:
            return future.result(timeout=2.0)
        except (FutureTimeout, OSError):
            return hostname


def _ipv4_addresses() -> list[str]:
    found: set[str] = set()
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        names = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue
            found.add(socket.inet_ntoa(answer[20:24]))
    return sorted(found, key=lambda a: ipaddress.ip_address(a))


def _ipv6_addresses() -> list[str]:
    found = []
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        raw = line.split()[0] if line.split() else ""
        if len(raw) == 32:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    return sorted(set(found))


def _mem_total_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
