"""``disk``: use of each mounted file system, with thresholds per mount."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from minion.beacons.base import Report, over, subject
from minion.options import Options

#: File systems that are not disks.
PSEUDO = {
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "bpf",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "overlay",
    "squashfs",
    "ramfs",
    "efivarfs",
}


def mounts() -> list[str]:
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] not in PSEUDO:
            found.append(parts[1].replace("\\040", " "))
    return sorted(set(found))


def usage(path: str) -> dict[str, float | int | str]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    percent = round(100.0 * used / (used + free), 1) if used + free else 0.0
    return {"mount": path, "total": total, "used": used, "free": free, "percent": percent}


class DiskBeacon:
    """Disk use per mount point.

    Options: ``mounts`` (the mount points to watch; default every real file system),
    ``thresholds`` (``{"/": 90, "/var": 80}``, percent used that sets ``over``; ``"*"``
    applies to the others).
    Data: ``mount total used free percent over``; subject: the mount point. With thresholds,
    onchange reports only when ``over`` changes.
    """

    default_interval: ClassVar[float] = 60.0

    def __init__(self, options: Options) -> None:
        self.mounts = options.text_list("mounts")
        self.thresholds = options.numbers("thresholds")

    def poll(self) -> list[Report]:
        reports = []
        for mount in self.mounts or mounts():
            try:
                data = usage(mount)
            except OSError:
                continue
            limit = self.thresholds.get(mount, self.thresholds.get("*"))
            data["over"] = over(float(data["percent"]), limit)
            reports.append(Report(subject(mount), data, state=data["over"] if self.thresholds else None))
        return reports
