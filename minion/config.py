"""The minion's configuration: read once from minion.yaml into a frozen ``MinionConfig``."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactord.protocol import configfile as cf
from reactord.protocol.keys import normalize_fingerprint
from reactord.protocol.logsetup import LEVELS
from reactord.protocol.metricsserver import MetricsConfig
from reactord.protocol.tags import validate_minion_id


def _minion_id(value: Any, where: cf.Where) -> str:
    if value in (None, ""):
        value = socket.gethostname().split(".")[0] or "minion"
    return validate_minion_id(value)


def _masters(value: Any, where: cf.Where) -> tuple[str, ...]:
    """``master:``: one host, or a list of hosts the minion uses one at a time (failover).

    Entries are hosts only: every master listens on the same ``event_port``,
    ``command_port`` and ``key_port``.
    """
    hosts = [value] if isinstance(value, str) else value
    if not isinstance(hosts, list):
        raise ValueError(f"expected a host or a list of hosts, got {_kind(value)}")
    if not hosts:
        raise ValueError("expected a host or a list of hosts, got an empty list")
    for n, host in enumerate(hosts, 1):
        entry = "" if isinstance(value, str) else f"entry {n}: "
        if not isinstance(host, str):
            raise ValueError(f"{entry}expected a host name or address, got {_kind(host)}")
        if not host.strip():
            raise ValueError(f"{entry}expected a host name or address, got an empty string")
        if host.count(":") == 1:
            raise ValueError(
                f"{entry}expected a host without a port, got {host!r} (every master listens on "
                "event_port, command_port and key_port)"
            )
    if len(set(hosts)) != len(hosts):
        twice = next(h for h in hosts if hosts.count(h) > 1)
        raise ValueError(f"{twice!r} is listed twice")
    return tuple(hosts)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else type(value).__name__


def _finger(value: Any, where: cf.Where) -> str | None:
    if value in (None, ""):
        return None
    return normalize_fingerprint(cf.as_str(value, where))


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    max_events: int = cf.option(100_000, cf.as_int(10, 100_000_000), "events kept undelivered at most")
    when_full: str = cf.option("drop_oldest", cf.as_choice("drop_oldest", "refuse"))
    batch_events: int = cf.option(500, cf.as_int(1, 10_000), "events per wire message at most")
    window: int = cf.option(20_000, cf.as_int(1, 10_000_000), "events in flight beyond the last ack")


def _roots(value: Any, where: cf.Where) -> tuple[Path, ...]:
    return tuple(cf.as_path(v, where) for v in cf.as_str_list(value, where))


#: What a minion runs when minion.yaml says nothing: read-only functions only.
DEFAULT_ALLOW = (
    "test.*",
    "grains.*",
    "sys.*",
    "beacons.list",
    "beacons.test",
    "service.status",
    "disk.usage",
)


@dataclass(frozen=True, slots=True)
class FunctionsConfig:
    allow: list[str] = cf.option(
        list(DEFAULT_ALLOW),
        cf.as_str_list,
        "globs of the functions this minion runs",
    )
    shell: bool = cf.option(False, cf.as_bool, "let cmd.run use a shell (shell=True)")
    file_roots: tuple[Path, ...] = cf.option([], _roots, "folders the file.* functions may touch")
    cmd_timeout: float = cf.option(60.0, cf.as_duration(0.01))
    max_output: int = cf.option(128 * 1024, cf.as_int(1024, 64 << 20), "bytes kept of each output stream")


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    dirs: tuple[Path, ...] = cf.option([], _roots, "folders of plugin modules (BEACONS, FUNCTIONS)")
    entry_points: bool = cf.option(True, cf.as_bool, "load installed plugins (entry points)")


@dataclass(frozen=True, slots=True)
class MinionConfig:
    path: Path = field(default=Path("minion.yaml"))
    id: str = cf.option(None, _minion_id)
    # The masters, in the order they are tried (after a shuffle with master_shuffle).
    master: tuple[str, ...] = cf.option("localhost", _masters, "a host, or a list of hosts (failover)")
    master_shuffle: bool = cf.option(False, cf.as_bool, "shuffle the master list once at start")
    event_port: int = cf.option(4510, cf.as_int(1, 65535))
    command_port: int = cf.option(4511, cf.as_int(1, 65535))
    key_port: int = cf.option(4512, cf.as_int(1, 65535))
    master_finger: str | None = cf.option(None, _finger)
    pki_dir: Path = cf.option("pki", cf.as_path)
    state_dir: Path = cf.option("state", cf.as_path)
    grains: dict[str, Any] = cf.option({}, cf.as_mapping)
    outbox: OutboxConfig = cf.option({}, cf.section(OutboxConfig))
    beacons: dict[str, Any] = cf.option({}, cf.as_mapping)
    functions: FunctionsConfig = cf.option({}, cf.section(FunctionsConfig))
    plugins: PluginsConfig = cf.option({}, cf.section(PluginsConfig))
    metrics: MetricsConfig = cf.option({}, cf.section(MetricsConfig))
    job_workers: int = cf.option(8, cf.as_int(1, 1024))
    retry_max: float = cf.option(10.0, cf.as_duration(0.1))
    max_message_size: int = cf.option(1 << 20, cf.as_size(1024, 64 << 20))
    log_level: str = cf.option("info", cf.as_choice(*LEVELS))
    log_format: str = cf.option("text", cf.as_choice("text", "json"))
    log_file: Path | None = cf.option(None, cf.as_optional_path)

    def endpoint(self, host: str, port: int) -> str:
        """The ZeroMQ address of one of a master's ports (IPv6 hosts in brackets)."""
        return f"tcp://{_host(host)}:{port}"

    @property
    def command_endpoint(self) -> str:
        """The command port of the first master listed."""
        return self.endpoint(self.master[0], self.command_port)

    @property
    def event_endpoint(self) -> str:
        """The event port of the first master listed."""
        return self.endpoint(self.master[0], self.event_port)

    @property
    def key_endpoint(self) -> str:
        """The key service of the first master listed."""
        return self.endpoint(self.master[0], self.key_port)

    @property
    def database(self) -> Path:
        return self.state_dir / "minion.db"

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.db"

    @property
    def local_socket(self) -> Path:
        return self.state_dir / "minion.sock"


def _host(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def load_minion_config(explicit: str | None) -> MinionConfig:
    """Find and read minion.yaml (``-c``, ``$REACTORD_CONFIG``, ``./``, ``/etc/reactord/``)."""
    return cf.load(MinionConfig, explicit, "minion.yaml")
