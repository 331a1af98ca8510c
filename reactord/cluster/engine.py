"""The one module that speaks NATS: connect to the cluster's engine, check it, create or check
the stream and bucket cluster mode needs, and the few operations on them (DESIGN.md §9).

Nothing else in reactord imports ``nats`` (nats-py, the ``cluster`` extra), and the embedded
master never imports this package. Every failure of the engine leaves here as one
``ClusterError`` whose message is one line (the master prints it and exits 2); a write that
loses a compare-and-set is not a failure but a plain answer (None or False), since losing a
lease is normal life in a cluster.

What it creates, and refuses when it finds it made otherwise:

- ``RDEV``, the event log: subjects ``rd.ev.<p>.<source>``, file storage, ``replicas``
  copies, deduplication by ``Nats-Msg-Id`` over ``duplicate_window`` (which must exceed the
  lease TTL, so a successor's replays are still caught), and the partition count P in its
  metadata (``reactord.partitions``): P is fixed at creation, a master set for another P
  refuses to start.
- ``rd_leases``, the partition leases: a KV bucket keeping one revision per key, whose TTL
  is the lease TTL (a master set for another TTL refuses to start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from reactord.base.errors import ClusterError
from reactord.cluster.subjects import (
    ACTIONS_STREAM,
    ACTIONS_SUBJECTS,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    KEYS_BUCKET,
    LEASES_BUCKET,
    PARTITIONS_KEY,
    PRESENCE_BUCKET,
    STATE_BUCKET,
)

log = logging.getLogger("reactord.cluster")

#: The oldest engine cluster mode runs on (per-message TTL, the KV and stream API it uses).
MIN_VERSION = (2, 11)
MSG_ID = "Nats-Msg-Id"

#: JetStream's error codes: a conditional write whose expected last sequence did not match,
#: and a stream created meanwhile, by another master, with another configuration.
_WRONG_LAST_SEQUENCE = (10071, 10164)
_STREAM_NAME_IN_USE = 10058
#: ... no suitable peers to place a replicated stream on (fewer servers than replicas, or, with
#: "offline" in its description, a peer not heard from yet while the cluster forms), and
#: JetStream temporarily unavailable (a meta leader being elected).
_NO_PEERS = 10005
_UNAVAILABLE = 10008

_ENGINE_ERRORS = (nats.errors.Error, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Layout:
    """What a master expects of the engine: the partition count P, the lease TTL (seconds),
    the number of copies of each stream, and the stream's dedupe window (seconds)."""

    partitions: int
    lease_ttl: float
    replicas: int = 1
    duplicate_window: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ClusterError(f"partitions must be between 1 and 1024, not {self.partitions}")
        if not 0 < self.lease_ttl <= 300:
            raise ClusterError(f"the lease TTL must be over 0s and at most 300s, not {self.lease_ttl:g}s")
        if not 1 <= self.replicas <= 5:
            raise ClusterError(f"replicas must be between 1 and 5, not {self.replicas}")
        if self.duplicate_window <= self.lease_ttl:
            raise ClusterError(
                f"the dedupe window ({self.duplicate_window:g}s) must exceed the lease TTL"
                f" ({self.lease_ttl:g}s)"
            )


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """The server this connection reached (``host:port``) and its version."""

    address: str
    version: str


@dataclass(frozen=True, slots=True)
class Published:
    """The engine's acknowledgement: the event's sequence, and whether it was a duplicate
    (a ``Nats-Msg-Id`` seen within the dedupe window: nothing was stored)."""

    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    subject: str
    data: bytes
    msg_id: str | None


def _describe(exc: BaseException) -> str:
    """One line about ``exc`` (nats-py's messages are often empty)."""
    if isinstance(exc, nats.js.errors.APIError) and exc.description:
        return exc.description
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def _engine_call(what: str) -> Iterator[None]:
    """Turn whatever the engine or the network raise into one ClusterError about ``what``."""
    try:
        yield
    except _ENGINE_ERRORS as exc:
        raise ClusterError(f"{what}: {_describe(exc)}") from exc


def transient(exc: ClusterError) -> bool:
    """Whether a failure may pass by itself: the engine timed out or had no one to answer (a
    JetStream leader election after a node restarted), or refused because its cluster is still
    forming (a peer not in the meta group yet), not a refusal that waiting cannot change."""
    cause = exc.__cause__
    if isinstance(cause, nats.js.errors.APIError):
        offline = cause.err_code == _NO_PEERS and "offline" in (cause.description or "")
        return offline or cause.err_code == _UNAVAILABLE
    return isinstance(cause, (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError))


def require_version(version: str) -> None:
    """Refuse an engine older than MIN_VERSION (``version`` as the server reports it)."""
    try:
        found = tuple(int(part) for part in version.split("-")[0].split(".")[:2])
    except ValueError:
        found = ()
    if len(found) != 2:
        raise ClusterError(f"the cluster's engine reports no version we can read: {version!r}")
    if found < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise ClusterError(
            f"the cluster's engine is nats-server {version}; cluster mode needs {need} or newer"
        )


async def connect(
    servers: Sequence[str],
    *,
    token: str | None = None,
    credentials: Path | None = None,
    timeout: float = 5.0,
    name: str = "reactord",
) -> Engine:
    """Connect to one of ``servers`` (``nats://host:port``), authenticated by ``token`` or a
    credentials file, within ``timeout`` seconds. Once connected, nats-py reconnects on its
    own (to any server of the cluster) for as long as the engine lives."""
    if credentials is not None and not credentials.is_file():
        raise ClusterError(f"the cluster's credentials file {credentials} is not a readable file")
    failures: list[str] = []
    refused = asyncio.Event()  # the engine said no (credentials): trying again cannot help

    async def on_error(exc: Exception) -> None:
        failures.append(_describe(exc))
        log.debug("cluster engine: %s", _describe(exc))
        if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower():
            refused.set()

    async def on_disconnected() -> None:
        if not client.is_closed:  # a close() of ours also says "disconnected"
            log.warning("cluster engine: connection lost, reconnecting")

    async def on_reconnected() -> None:
        log.info("cluster engine: reconnected to %s", client.connected_url)

    client = Client()
    where = ", ".join(servers)
    connecting = asyncio.create_task(
        client.connect(
            servers=list(servers),
            name=name,
            token=token,
            user_credentials=str(credentials) if credentials is not None else None,
            connect_timeout=max(1, math.ceil(timeout)),
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    )
    waiting = asyncio.create_task(refused.wait())
    done, _ = await asyncio.wait({connecting, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    try:
        if connecting not in done:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_ENGINE_ERRORS, ValueError):
                await connecting
            raise TimeoutError("no answer")
        connecting.result()
    except ImportError as exc:  # nats-py reads a credentials file with the nkeys package
        raise ClusterError(f"a credentials file needs the nkeys package: pip install nkeys ({exc})") from exc
    except (*_ENGINE_ERRORS, ValueError) as exc:
        await client.close()
        last = failures[-1] if failures else _describe(exc)
        if refused.is_set():
            raise ClusterError(f"the cluster's engine at {where} refused this master: {last}") from exc
        raise ClusterError(
            f"cannot reach the cluster's engine at {where} within {timeout:g}s: {last}"
        ) from exc
    return Engine(client, timeout)


class Engine:
    """A connection to the cluster's engine and its JetStream API (``timeout`` per request)."""

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        self._js = client.jetstream(timeout=timeout)
        self.timeout = timeout

    @property
    def connected(self) -> bool:
        return self._client.is_connected

    async def close(self) -> None:
        await self._client.close()

    async def check_engine(self) -> EngineInfo:
        """Refuse, with one line, an engine older than 2.11 or without JetStream."""
        url = self._client.connected_url
        where = f"{url.hostname}:{url.port}" if url is not None else "the engine"
        version = self._client.connected_server_version
        try:
            text = f"{version.major}.{version.minor}.{version.patch}"
        except ValueError:
            text = repr(version)
        require_version(text)
        try:
            await self._js.account_info()
        except nats.js.errors.ServiceUnavailableError as exc:
            raise ClusterError(
                f"the cluster's engine at {where} has no JetStream (run nats-server with -js,"
                " or a jetstream block in its config)"
            ) from exc
        except _ENGINE_ERRORS as exc:
            raise ClusterError(f"JetStream at {where} does not serve this account: {_describe(exc)}") from exc
        return EngineInfo(where, text)

    async def ensure_streams(self, layout: Layout) -> None:
        """Create the event stream and the lease bucket, or check the ones there were made for
        ``layout`` (see the module docstring); one ClusterError line if not."""
        try:
            await self._ensure_events(layout)
            await self._ensure_leases(layout)
            await self._ensure_actions(layout)
            for name in (KEYS_BUCKET, PRESENCE_BUCKET, STATE_BUCKET):
                await self._ensure_bucket(name, layout)
        except ClusterError as exc:
            cause = exc.__cause__
            if transient(exc) or not (
                isinstance(cause, nats.js.errors.APIError) and cause.err_code == _NO_PEERS
            ):
                raise
            raise ClusterError(
                f"{exc} (replicas: {layout.replicas} needs as many JetStream servers in the engine's cluster)"
            ) from cause

    async def _ensure_actions(self, layout: Layout) -> None:
        """The action intents: kept a day, deduplicated by action id over the dedupe window."""
        if await self._stream_info(ACTIONS_STREAM) is not None:
            return
        config = StreamConfig(
            name=ACTIONS_STREAM,
            description="reactord action intents",
            subjects=[ACTIONS_SUBJECTS],
            storage=StorageType.FILE,
            num_replicas=layout.replicas,
            duplicate_window=layout.duplicate_window,
            max_age=max(86400.0, layout.duplicate_window),
        )
        with _engine_call(f"cannot create the stream {ACTIONS_STREAM}"):
            try:
                await self._js.add_stream(config)
            except nats.js.errors.APIError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise

    async def _ensure_bucket(self, name: str, layout: Layout) -> None:
        if await self._bucket(name) is not None:
            return
        config = KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=layout.replicas)
        with _engine_call(f"cannot create the bucket {name}"):
            try:
                await self._js.create_key_value(config)
            except nats.js.errors.APIError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise

    async def _ensure_events(self, layout: Layout) -> None:
        config = StreamConfig(
            name=EVENTS_STREAM,
            description=f"reactord event log, {layout.partitions} partitions by source",
            subjects=[EVENTS_SUBJECTS],
            storage=StorageType.FILE,
            num_replicas=layout.replicas,
            duplicate_window=layout.duplicate_window,
            metadata={PARTITIONS_KEY: str(layout.partitions)},
        )
        info = await self._stream_info(EVENTS_STREAM)
        if info is None:
            try:
                with _engine_call(f"cannot create the stream {EVENTS_STREAM}"):
                    info = await self._js.add_stream(config)
                log.info("cluster: created the stream %s (%d partitions)", EVENTS_STREAM, layout.partitions)
            except ClusterError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, nats.js.errors.APIError) and cause.err_code == _STREAM_NAME_IN_USE):
                    raise
                info = await self._stream_info(EVENTS_STREAM)  # another master was quicker
            if info is None:
                raise ClusterError(f"the stream {EVENTS_STREAM} vanished while it was being created")
        found = (info.config.metadata or {}).get(PARTITIONS_KEY)
        if found is None:
            raise ClusterError(
                f"the stream {EVENTS_STREAM} exists but was not made by reactord (no {PARTITIONS_KEY}"
                " in its metadata)"
            )
        if found != str(layout.partitions):
            raise ClusterError(
                f"the stream {EVENTS_STREAM} was created with {found} partitions, this master is set for"
                f" {layout.partitions}: the count is fixed at creation (set partitions: {found})"
            )
        window = info.config.duplicate_window
        if window <= layout.lease_ttl:
            raise ClusterError(
                f"the stream {EVENTS_STREAM} dedupes over {window:g}s, which must exceed the lease TTL"
                f" ({layout.lease_ttl:g}s)"
            )

    async def _stream_info(self, name: str) -> StreamInfo | None:
        try:
            with _engine_call(f"cannot read the stream {name}"):
                return await self._js.stream_info(name)
        except ClusterError as exc:
            if isinstance(exc.__cause__, nats.js.errors.NotFoundError):
                return None
            raise

    async def _ensure_leases(self, layout: Layout) -> None:
        config = KeyValueConfig(
            bucket=LEASES_BUCKET,
            description="reactord partition leases",
            history=1,
            ttl=layout.lease_ttl,
            storage=StorageType.FILE,
            replicas=layout.replicas,
        )
        kv = await self._bucket(LEASES_BUCKET)
        if kv is None:
            with _engine_call(f"cannot create the bucket {LEASES_BUCKET}"):
                try:
                    kv = await self._js.create_key_value(config)
                    log.info("cluster: created the bucket %s (TTL %gs)", LEASES_BUCKET, layout.lease_ttl)
                except nats.js.errors.APIError as exc:
                    if exc.err_code != _STREAM_NAME_IN_USE:
                        raise
                    kv = await self._js.key_value(LEASES_BUCKET)  # another master was quicker
        with _engine_call(f"cannot read the bucket {LEASES_BUCKET}"):
            ttl = (await kv.status()).ttl
        if ttl is None or not math.isclose(ttl, layout.lease_ttl, abs_tol=0.001):
            raise ClusterError(
                f"the bucket {LEASES_BUCKET} keeps leases {ttl or 0:g}s, this master's lease TTL is"
                f" {layout.lease_ttl:g}s: every master must use the same lease TTL"
            )

    async def _bucket(self, name: str) -> KeyValue | None:
        try:
            with _engine_call(f"cannot read the bucket {name}"):
                return await self._js.key_value(name)
        except ClusterError as exc:
            if isinstance(exc.__cause__, nats.js.errors.BucketNotFoundError):
                return None
            raise

    async def leases(self) -> KvBucket:
        """The lease bucket (made by ``ensure_streams``), as leases.LeaseStore wants it."""
        return await self.bucket(LEASES_BUCKET)

    async def bucket(self, name: str) -> KvBucket:
        """One of the buckets ``ensure_streams`` made."""
        kv = await self._bucket(name)
        if kv is None:
            raise ClusterError(f"the bucket {name} does not exist (ensure_streams makes it)")
        return KvBucket(kv)

    async def publish(
        self, subject: str, data: bytes, msg_id: str, *, stream: str = EVENTS_STREAM
    ) -> Published:
        """Store one message in ``stream``, deduplicated by ``msg_id``; returns after the
        engine's acknowledgement (replicated to a quorum)."""
        with _engine_call(f"the engine did not store {subject}"):
            ack = await self._js.publish(subject, data, stream=stream, headers={MSG_ID: msg_id})
        return Published(ack.seq, bool(ack.duplicate))

    async def follow(
        self, start: int, handler: Callable[[int, bytes], Awaitable[None]], *, subject: str = EVENTS_SUBJECTS
    ) -> Following:
        """Deliver the event stream from sequence ``start`` on, in order, to ``handler``
        (sequence, payload), a batch at a time as the handler takes them: a pull consumer of
        this connection's own (in memory, one copy, gone a minute after its last fetch), so a
        slow handler slows the reading, never drops a record."""
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start),
            ack_policy=AckPolicy.ALL,
            ack_wait=600.0,
            max_ack_pending=-1,
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        )
        with _engine_call(f"cannot follow {EVENTS_STREAM}"):
            sub = await self._js.pull_subscribe(subject, durable=None, stream=EVENTS_STREAM, config=config)

        async def pull() -> None:
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=1.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except _ENGINE_ERRORS as exc:
                    log.warning("cluster: reading %s: %s", EVENTS_STREAM, _describe(exc))
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await handler(msg.metadata.sequence.stream, msg.data or b"")
                if msgs:
                    with contextlib.suppress(*_ENGINE_ERRORS):
                        await msgs[-1].ack()  # AckAll: everything up to it

        return Following(sub, asyncio.create_task(pull(), name="cluster-follow"))

    async def last_seq(self, stream: str = EVENTS_STREAM) -> int:
        """The stream's last sequence (0 when empty)."""
        info = await self._stream_info(stream)
        return 0 if info is None else info.state.last_seq

    async def health(self, stream: str) -> dict[str, object]:
        """What the engine says of ``stream``: messages, bytes, last sequence, leader, replicas."""
        info = await self._stream_info(stream)
        if info is None:
            return {"stream": stream, "exists": False}
        cluster = info.cluster
        replicas = [
            {"name": r.name, "current": bool(r.current), "lag": r.lag or 0, "offline": bool(r.offline)}
            for r in (cluster.replicas or [] if cluster is not None else [])
        ]
        return {
            "stream": stream,
            "exists": True,
            "messages": info.state.messages,
            "bytes": info.state.bytes,
            "last_seq": info.state.last_seq,
            "leader": cluster.leader if cluster is not None else None,
            "replicas": replicas,
        }

    @property
    def max_payload(self) -> int:
        """The largest message the engine takes (nats-server's max_payload)."""
        return int(self._client.max_payload)

    @property
    def server(self) -> EngineInfo:
        url = self._client.connected_url
        where = f"{url.hostname}:{url.port}" if url is not None else ""
        info = self._client._server_info or {}
        return EngineInfo(where, str(info.get("version", "")))

    async def serve(self, subject: str, handler: Callable[[bytes], Awaitable[bytes | None]]) -> Subscription:
        """Answer requests on a core subject: ``handler``'s bytes are the reply (None: none)."""

        async def answer(msg: Msg) -> None:
            try:
                reply = await handler(msg.data or b"")
            except Exception:  # one bad message must not end the subscription
                log.exception("cluster: a message on %s could not be handled", subject)
                return
            if reply is not None and msg.reply:
                with contextlib.suppress(*_ENGINE_ERRORS):
                    await msg.respond(reply)

        with _engine_call(f"cannot subscribe to {subject}"):
            return await self._client.subscribe(subject, cb=answer, pending_bytes_limit=64 << 20)

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes | None:
        """A request on a core subject: the first reply, None if nobody answers in time."""
        try:
            msg = await self._client.request(subject, data, timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError):
            return None
        except _ENGINE_ERRORS as exc:
            raise ClusterError(f"no answer on {subject}: {_describe(exc)}") from exc
        return msg.data

    async def read(self, seq: int) -> Stored:
        """The event stored at ``seq`` in the event stream."""
        with _engine_call(f"cannot read {EVENTS_STREAM} #{seq}"):
            msg = await self._js.get_msg(EVENTS_STREAM, seq)
        headers = msg.headers or {}
        return Stored(seq, msg.subject or "", msg.data or b"", headers.get(MSG_ID))

    async def stored(self) -> int:
        """How many events the event stream holds."""
        info = await self._stream_info(EVENTS_STREAM)
        return 0 if info is None else info.state.messages


class Following:
    """A running consumer of the event stream (``Engine.follow``) and the task reading it."""

    def __init__(self, sub: Any, task: asyncio.Task[None]) -> None:
        self._sub = sub
        self._task = task

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(*_ENGINE_ERRORS, nats.errors.BadSubscriptionError):
            await self._sub.unsubscribe()


class KvBucket:
    """A KV bucket with compare-and-set writes (``leases.LeaseStore``): a write that finds
    another revision than it expects answers None (or False), everything else that fails is
    a ClusterError."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, key: str, value: bytes) -> int | None:
        with _engine_call(f"cannot create {key}"):
            try:
                return await self._kv.create(key, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

    async def update(self, key: str, value: bytes, revision: int) -> int | None:
        if revision < 1:  # nats-py reads 0 as "no condition"
            return None
        with _engine_call(f"cannot update {key}"):
            try:
                return await self._kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

    async def delete(self, key: str, revision: int) -> bool:
        if revision < 1:
            return False
        with _engine_call(f"cannot delete {key}"):
            try:
                return await self._kv.delete(key, last=revision)
            except nats.js.errors.APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE:
                    return False
                raise

    async def get(self, key: str) -> tuple[bytes, int] | None:
        with _engine_call(f"cannot read {key}"):
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
        return entry.value or b"", entry.revision or 0

    async def put(self, key: str, value: bytes) -> int:
        with _engine_call(f"cannot write {key}"):
            return await self._kv.put(key, value)

    async def remove(self, key: str) -> None:
        with _engine_call(f"cannot delete {key}"):
            await self._kv.delete(key)

    async def items(self) -> dict[str, bytes]:
        """Every key's value now."""
        found: dict[str, bytes] = {}
        with _engine_call("cannot list the bucket"):
            try:
                names = await self._kv.keys()
            except nats.js.errors.NoKeysError:
                return found
            for name in names:
                try:
                    entry = await self._kv.get(name)
                except nats.js.errors.KeyNotFoundError:
                    continue
                found[name] = entry.value or b""
        return found

    async def watch(self, handler: Callable[[str, bytes | None], Awaitable[None]]) -> asyncio.Task[None]:
        """Call ``handler(key, value)`` for every key now and every change after (value None:
        deleted or expired), in order, until the task is cancelled."""
        with _engine_call("cannot watch the bucket"):
            watcher = await self._kv.watchall()

        async def loop() -> None:
            try:
                while True:
                    entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
                    if entry is None:
                        continue  # "the keys there were are all delivered"
                    gone = entry.operation in (KV_DEL, KV_PURGE)
                    try:
                        await handler(entry.key, None if gone else (entry.value or b""))
                    except Exception:
                        log.exception("cluster: a change of %s could not be applied", entry.key)
            finally:
                with contextlib.suppress(*_ENGINE_ERRORS, nats.errors.BadSubscriptionError):
                    await watcher.stop()  # type: ignore[no-untyped-call]

        return asyncio.create_task(loop(), name="kv-watch")
