"""Beacons: what watches the host and turns its state into events.

``BUILTINS`` is the visible registry of beacon kinds; third-party kinds come from the
``reactord.beacons`` entry point group and from ``plugins.dirs`` (see minion/plugins.py).
The contract is in base.py.
"""

from __future__ import annotations

from minion.beacons.disk import DiskBeacon
from minion.beacons.files import FileBeacon
from minion.beacons.network import HttpBeacon, TcpPortBeacon
from minion.beacons.processes import ProcessBeacon, ServiceBeacon
from minion.beacons.programs import CommandBeacon, HeartbeatBeacon, JournalBeacon
from minion.beacons.system import LoadBeacon, MemoryBeacon

BUILTINS: dict[str, type] = {
    "load": LoadBeacon,
    "memory": MemoryBeacon,
    "disk": DiskBeacon,
    "service": ServiceBeacon,
    "process": ProcessBeacon,
    "file": FileBeacon,
    "tcp_port": TcpPortBeacon,
    "http": HttpBeacon,
    "command": CommandBeacon,
    "journal": JournalBeacon,
    "heartbeat": HeartbeatBeacon,
}
