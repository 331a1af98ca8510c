"""The master's configuration: read once from master.yaml into a frozen ``MasterConfig``."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactord.protocol import configfile as cf
from reactord.protocol.errors import ConfigError
from reactord.protocol.logsetup import LEVELS
from reactord.protocol.metricsserver import MetricsConfig

DEFAULT_EVENT_PORT = 4510
DEFAULT_COMMAND_PORT = 4511
DEFAULT_KEY_PORT = 4512
DEFAULT_HTTP_PORT = 4513


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    heartbeat: float = cf.option(5.0, cf.as_duration(0.05), "how often minions send heartbeats")
    suspect_after: float = cf.option(15.0, cf.as_duration(0.1), "silence before suspect")
    down_after: float = cf.option(30.0, cf.as_duration(0.1), "silence before down")

    def __post_init__(self) -> None:
        if not self.heartbeat < self.suspect_after < self.down_after:
            raise ValueError("presence needs heartbeat < suspect_after < down_after")


@dataclass(frozen=True, slots=True)
class EventLogConfig:
    max_age: float = cf.option(30 * 86400.0, cf.as_duration(0.0), "drop events older than this (0: keep)")
    max_count: int = cf.option(10_000_000, cf.as_int(0, 10**12), "keep this many events at most (0: all)")
    max_bytes: int = cf.option(
        8 << 30,
        cf.as_size(0, 1 << 50),
        "the database's pages in use at most; oldest events go first (0: no bound)",
    )


@dataclass(frozen=True, slots=True)
class ReactorConfig:
    max_depth: int = cf.option(8, cf.as_int(1, 100), "fire actions deep before a chain is stopped")
    max_concurrent_actions: int = cf.option(64, cf.as_int(1, 10_000))
    max_pending_actions: int = cf.option(
        10_000, cf.as_int(1, 10_000_000), "firings queued; past it ingest waits"
    )
    max_pending_bytes: int = cf.option(
        64 << 20, cf.as_size(1 << 20, 1 << 40), "bytes of queued firings' events"
    )
    state_limit: int = cf.option(100_000, cf.as_int(100, 100_000_000), "keys per kind of rule state")
    hold_bytes: int = cf.option(
        64 << 20, cf.as_size(1 << 20, 1 << 40), "bytes of events kept by `for:` holds"
    )
    match_bytes: int = cf.option(
        256 << 20,
        cf.as_size(1 << 20, 1 << 40),
        "bytes of events kept by correlations, sequences and absences, all rules together",
    )
    watch_rules: bool = cf.option(True, cf.as_bool, "reload when a rule file changes on disk")


@dataclass(frozen=True, slots=True)
class StateConfig:
    ttl: float = cf.option(300.0, cf.as_duration(0.1), "state older than this is stale (gates fail on it)")
    cache_bytes: int = cf.option(64 << 20, cf.as_size(1 << 20, 1 << 40), "memory for the latest state")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What one sender may hand the master, and how much a connection may queue."""

    events_per_second: float = cf.option(20_000, cf.as_number(0, 1e9), "per source (0: no limit)")
    bytes_per_second: int = cf.option(32 << 20, cf.as_size(0, 1 << 40), "per source (0: no limit)")
    burst_seconds: float = cf.option(
        5.0, cf.as_number(0.1, 3600), "a burst may take this many seconds' worth"
    )
    receive_queue_bytes: int = cf.option(64 << 20, cf.as_size(1 << 20, 1 << 40), "queued per connection")


def _secret(value: Any, where: cf.Where) -> str | None:
    if value in (None, ""):
        return None
    return cf.as_str(value, where)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    kind: str = cf.option("json", cf.as_choice("json", "cloudevents", "github", "alertmanager"))
    secret: str | None = cf.option(None, _secret, "HMAC-SHA256 key of the signature header (sha256=...)")
    secret_file: Path | None = cf.option(None, cf.as_optional_path, "a file holding the secret")
    token: str | None = cf.option(None, _secret, "bearer token (Authorization: Bearer ...)")
    token_file: Path | None = cf.option(None, cf.as_optional_path, "a file holding the token")

    def __post_init__(self) -> None:
        if not (self.secret or self.secret_file or self.token or self.token_file):
            raise ValueError("every endpoint authenticates: give secret(_file) or token(_file)")


def _endpoints(value: Any, where: cf.Where) -> dict[str, EndpointConfig]:
    raw = cf.as_mapping(value, where)
    out = {}
    for name, spec in raw.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise ValueError(f"bad endpoint name {name!r}")
        here = cf.Where(where.path, where.base, f"{where.key}.{name}")
        try:
            out[name] = cf.build(EndpointConfig, spec or {}, here)
        except ValueError as exc:  # the endpoint's own check (it must authenticate)
            raise ConfigError(where.path, here.key, str(exc)) from exc
    return out


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    address: str = cf.option(
        "", cf.as_address, "deprecated: a webhooks-only listener (use http.address); empty: off"
    )
    max_body: int = cf.option(1 << 20, cf.as_size(1024, 64 << 20), "largest request body, bytes")
    max_events: int = cf.option(1000, cf.as_int(1, 1_000_000), "events one request may become")
    max_connections: int = cf.option(64, cf.as_int(1, 10_000), "webhook requests handled at once")
    dedupe_window: float = cf.option(
        86400.0, cf.as_duration(0.0), "a delivery sent again within this is logged once (0: off)"
    )
    endpoints: dict[str, EndpointConfig] = cf.option({}, _endpoints, "name -> {kind, secret|token}")


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The master's one HTTP server (docs/api.md): the API, the dashboard, webhooks and /metrics."""

    address: str = cf.option("", cf.as_address, "host:port of the HTTP server; empty: off")
    tls_cert: Path | None = cf.option(None, cf.as_optional_path, "PEM certificate (chain): HTTPS")
    tls_key: Path | None = cf.option(None, cf.as_optional_path, "PEM private key of tls_cert")
    max_body: int = cf.option(1 << 20, cf.as_size(1024, 64 << 20), "largest API request body, bytes")
    max_connections: int = cf.option(256, cf.as_int(1, 100_000), "connections open at once")
    header_timeout: float = cf.option(
        10.0, cf.as_duration(0.5), "a connection must send a whole request head within this"
    )
    body_timeout: float = cf.option(10.0, cf.as_duration(0.5), "a request body must arrive within this")
    session_ttl: float = cf.option(12 * 3600.0, cf.as_duration(60.0), "a dashboard login lasts this long")
    max_sessions: int = cf.option(10_000, cf.as_int(1, 1_000_000), "dashboard logins kept at once")
    live_clients: int = cf.option(64, cf.as_int(1, 10_000), "live event streams open at once")
    metrics_token: bool = cf.option(False, cf.as_bool, "/metrics asks for a read token")

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("http: give both tls_cert and tls_key, or neither")


def _nats_urls(value: Any, where: cf.Where) -> list[str]:
    urls = cf.as_str_list(value, where)
    for url in urls:
        if not re.fullmatch(r"(nats|tls)://[^\s/]+:\d{1,5}", url):
            raise ConfigError(where.path, where.key, f"{url!r} is not nats://host:port (or tls://host:port)")
    return urls


def _member_name(value: Any, where: cf.Where) -> str:
    text = cf.as_str(value, where)
    if text and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ConfigError(where.path, where.key, "letters, digits, - and _ only, at most 64 of them")
    return text


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster mode (docs/cluster.md): off while ``servers`` is empty."""

    servers: list[str] = cf.option([], _nats_urls, "the NATS servers (nats://host:port); empty: no cluster")
    name: str = cf.option("", _member_name, "this master's name in the cluster (default: host-commandport)")
    token: str | None = cf.option(None, _secret, "the engine's auth token")
    token_file: Path | None = cf.option(None, cf.as_optional_path, "a file holding the token")
    credentials: Path | None = cf.option(None, cf.as_optional_path, "a NATS credentials file (.creds)")
    partitions: int = cf.option(64, cf.as_int(1, 1024), "partitions by source, fixed when the stream is made")
    lease_ttl: float = cf.option(10.0, cf.as_duration(1.0), "a partition's owner must renew within this")
    replicas: int = cf.option(1, cf.as_int(1, 5), "copies of each stream and bucket (3 in production)")
    duplicate_window: float = cf.option(120.0, cf.as_duration(2.0), "the engine's dedupe window")
    connect_timeout: float = cf.option(5.0, cf.as_duration(0.1), "how long a start waits for the engine")
    watchdog: float = cf.option(
        30.0, cf.as_duration(1.0), "a consumer with pending messages silent this long is recreated"
    )

    def __post_init__(self) -> None:
        if self.token and self.token_file:
            raise ValueError("cluster: token or token_file, not both")
        if self.duplicate_window <= self.lease_ttl:
            raise ValueError("cluster: duplicate_window must exceed lease_ttl")

    @property
    def enabled(self) -> bool:
        return bool(self.servers)


def _nodegroups(value: Any, where: cf.Where) -> dict[str, str]:
    from reactord.base.errors import TargetError
    from reactord.base.targeting import check_nodegroups

    try:
        return check_nodegroups(cf.as_mapping(value, where))
    except TargetError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class MasterConfig:
    path: Path = field(default=Path("master.yaml"))
    interface: str = cf.option("0.0.0.0", cf.as_str)
    event_port: int = cf.option(DEFAULT_EVENT_PORT, cf.as_int(1, 65535))
    command_port: int = cf.option(DEFAULT_COMMAND_PORT, cf.as_int(1, 65535))
    key_port: int = cf.option(DEFAULT_KEY_PORT, cf.as_int(0, 65535))
    pki_dir: Path = cf.option("pki", cf.as_path)
    state_dir: Path = cf.option("state", cf.as_path)
    control_socket: Path | None = cf.option(None, cf.as_optional_path)
    rules: list[str] = cf.option(["reactor.d/*.yaml"], cf.as_str_list)
    auto_accept: bool = cf.option(False, cf.as_bool)
    max_pending: int = cf.option(1000, cf.as_int(0, 1_000_000))
    presence: PresenceConfig = cf.option({}, cf.section(PresenceConfig))
    event_log: EventLogConfig = cf.option({}, cf.section(EventLogConfig))
    reactor: ReactorConfig = cf.option({}, cf.section(ReactorConfig))
    state: StateConfig = cf.option({}, cf.section(StateConfig))
    limits: LimitsConfig = cf.option({}, cf.section(LimitsConfig))
    metrics: MetricsConfig = cf.option({}, cf.section(MetricsConfig))
    webhooks: WebhooksConfig = cf.option({}, cf.section(WebhooksConfig))
    http: HttpConfig = cf.option({}, cf.section(HttpConfig))
    cluster: ClusterConfig = cf.option({}, cf.section(ClusterConfig))
    nodegroups: dict[str, str] = cf.option({}, _nodegroups, "name -> compound target (or list of ids)")
    job_timeout: float = cf.option(10.0, cf.as_duration(0.01))
    command_ttl: float = cf.option(300.0, cf.as_duration(1.0))
    max_message_size: int = cf.option(1 << 20, cf.as_size(1024, 64 << 20))
    log_level: str = cf.option("info", cf.as_choice(*LEVELS))
    log_format: str = cf.option("text", cf.as_choice("text", "json"))
    log_file: Path | None = cf.option(None, cf.as_optional_path)

    @property
    def control_path(self) -> Path:
        return self.control_socket or (self.state_dir / "control.sock")

    @property
    def bus_path(self) -> Path:
        return self.state_dir / "bus.sock"

    @property
    def database(self) -> Path:
        return self.state_dir / "master.db"

    @property
    def member(self) -> str:
        """This master's name in a cluster."""
        if self.cluster.name:
            return self.cluster.name
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:48] or "master"
        return f"{host}-{self.command_port}"


def load_master_config(explicit: str | None) -> MasterConfig:
    """Find and read master.yaml (``-c``, ``$REACTORD_CONFIG``, ``./``, ``/etc/reactord/``)."""
    return cf.load(MasterConfig, explicit, "master.yaml")


def read_secret(value: str | None, path: Path | None, what: str) -> str:
    """A secret or token (a webhook's, the cluster engine's), inline or from an owner-only file."""
    if value:
        return value
    assert path is not None
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                str(path), what, f"mode {mode:04o} gives access to others: make it owner-only (chmod 600)"
            )
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(str(path), what, f"cannot read: {exc.strerror}") from exc
    if not text:
        raise ConfigError(str(path), what, "the file is empty")
    return text
