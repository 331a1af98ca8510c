"""Node awareness: hellos, heartbeats, key decisions and what each means for a connection.

This is where a key's state meets the live link: accepting a key welcomes the waiting
minion at once; rejecting or deleting one cuts it off at once (no route, no presence, and
every later message dropped by the key check in the link).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from reactord import __version__
from reactord.base.config import MasterConfig
from reactord.keystore import ACCEPTED, PENDING, KeyEntry, KeyStore
from reactord.link import CommandLink
from reactord.presence import PresenceTracker
from reactord.protocol import codec
from reactord.protocol import messages as m
from reactord.protocol.keys import Signer
from reactord.store.minions import MinionRegistry

log = logging.getLogger("reactord.nodes")

Emit = Callable[[str, dict[str, Any]], object]


class Nodes:
    def __init__(
        self,
        config: MasterConfig,
        keystore: KeyStore,
        registry: MinionRegistry,
        presence: PresenceTracker,
        signer: Signer,
        emit: Emit,
        link: CommandLink | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.keystore = keystore
        self.registry = registry
        self.presence = presence
        self.signer = signer
        self.emit = emit
        self.clock = clock
        self.link = link  # None: no live connections (tests of key decisions alone)
        self._pending_hello: dict[bytes, m.Hello] = {}
        self.outbox_depth: dict[str, int] = {}  # as each accepted minion last reported it

    def welcome(self, status: str) -> m.Welcome:
        if status == ACCEPTED:
            return m.Welcome(
                status=status,
                signing_key=self.signer.public,
                heartbeat=self.config.presence.heartbeat,
                message=f"reactord {__version__}",
            )
        if status == PENDING:
            return m.Welcome(status=status, message="key pending: accept it on the master")
        return m.Welcome(status=status, message=f"key {status} by the master")

    def on_hello(self, key: bytes, hello: m.Hello) -> m.Welcome:
        if hello.protocol != m.PROTOCOL_VERSION:
            log.warning(
                "refused %s: it speaks protocol %d, this master %d",
                hello.id,
                hello.protocol,
                m.PROTOCOL_VERSION,
                extra={"minion": hello.id},
            )
            return m.Welcome(
                status="rejected",
                message=(
                    f"protocol {hello.protocol} is not supported: this master speaks {m.PROTOCOL_VERSION}"
                ),
            )
        before = self.keystore.lookup(key)
        status = self.keystore.register(hello.id, key)
        now = self.clock()
        if status == PENDING:
            if len(self._pending_hello) < self.config.max_pending or key in self._pending_hello:
                self._pending_hello[key] = _bounded(hello)
            if before is None:
                self.emit(f"reactor/key/{hello.id}/pending", {"id": hello.id, "key_state": PENDING})
        elif status == ACCEPTED:
            self.registry.upsert_hello(hello.id, _grains(hello), hello.version, hello.functions, now)
            self.presence.seen(hello.id, now)
            if before is None:  # auto-accepted
                self.emit(f"reactor/key/{hello.id}/accepted", {"id": hello.id, "key_state": ACCEPTED})
            log.debug("hello from %s", hello.id, extra={"minion": hello.id})
        elif before is None and self.keystore.lookup(key) is not None:  # newly stored, once
            self.emit(f"reactor/key/{hello.id}/{status}", {"id": hello.id, "key_state": status})
        return self.welcome(status)

    def on_heartbeat(self, minion_id: str, beat: m.Heartbeat) -> m.Pong:
        self.presence.seen(minion_id, self.clock())
        self.outbox_depth[minion_id] = max(0, beat.outbox)
        return m.Pong(time=self.clock())

    # -- operator actions, from the control socket ---------------------------------------------

    def accept(self, minion_id: str) -> KeyEntry:
        """Accept a key: all or nothing (the key store's move is; what follows cannot fail)."""
        entry = self.keystore.accept(minion_id)
        now = self.clock()
        hello = self._pending_hello.pop(entry.key, None)
        if hello is not None:
            self.registry.upsert_hello(minion_id, _grains(hello), hello.version, hello.functions, now)
        log.info("accepted the key of %s", minion_id, extra={"minion": minion_id})
        self.emit(f"reactor/key/{minion_id}/accepted", {"id": minion_id, "key_state": ACCEPTED})
        if self.link is not None and self.link.send_to_key(entry.key, self.welcome(ACCEPTED)):
            if hello is not None:
                self.presence.seen(minion_id, now)
        return entry

    def reject(self, minion_id: str) -> KeyEntry:
        entry = self.keystore.reject(minion_id)
        self._cut_off(minion_id, [entry.key])
        log.warning("rejected the key of %s", minion_id, extra={"minion": minion_id})
        self.emit(f"reactor/key/{minion_id}/rejected", {"id": minion_id, "key_state": "rejected"})
        return entry

    def delete(self, minion_id: str) -> list[KeyEntry]:
        entries = self.keystore.delete(minion_id)
        self._cut_off(minion_id, [e.key for e in entries])
        log.warning("deleted the keys of %s", minion_id, extra={"minion": minion_id})
        self.emit(f"reactor/key/{minion_id}/deleted", {"id": minion_id, "key_state": "deleted"})
        return entries

    # -- cluster mode: key changes another master made ------------------------------------------

    def accepted_elsewhere(self, minion_id: str) -> None:
        """Another master accepted this key: a minion waiting here is let in now."""
        key = self.keystore.accepted_key(minion_id)
        if key is None:
            return
        now = self.clock()
        hello = self._pending_hello.pop(key, None)
        if hello is not None:
            self.registry.upsert_hello(minion_id, _grains(hello), hello.version, hello.functions, now)
        if self.link is not None and self.link.send_to_key(key, self.welcome(ACCEPTED)) and hello is not None:
            self.presence.seen(minion_id, now)

    def removed_elsewhere(self, minion_id: str, keys: list[bytes]) -> None:
        """Another master rejected or deleted keys of this minion: cut them off here too (that
        master said so in the log; this one only forgets)."""
        self.outbox_depth.pop(minion_id, None)
        for key in keys:
            self._pending_hello.pop(key, None)
            if self.link is not None:
                self.link.forget(key)
        if self.keystore.accepted_key(minion_id) is None:
            self.registry.remove(minion_id)

    def _cut_off(self, minion_id: str, keys: list[bytes]) -> None:
        self.outbox_depth.pop(minion_id, None)
        for key in keys:
            self._pending_hello.pop(key, None)
            if self.link is not None:
                self.link.forget(key)
        self.presence.forget(minion_id, self.clock())


#: The grains of a key not yet accepted are kept in memory up to this size (packed).
MAX_PENDING_GRAINS = 16 * 1024
#: The grains of an accepted minion are kept up to this size (packed); larger ones are not.
MAX_GRAINS = 64 * 1024


def _grains(hello: m.Hello) -> dict[str, Any]:
    """The grains to keep for an accepted minion: as sent, or a note when they are too large
    (they nest at most as deep as event data: the decoder refused deeper ones)."""
    size = len(codec.pack(hello.grains))
    if size <= MAX_GRAINS:
        return hello.grains
    log.warning(
        "grains of %s not kept: %d bytes packed, more than %d",
        hello.id,
        size,
        MAX_GRAINS,
        extra={"minion": hello.id},
    )
    return {"grains_dropped": f"{size} bytes, more than the {MAX_GRAINS} a minion's grains may take"}


def _bounded(hello: m.Hello) -> m.Hello:
    """A pending minion's hello, its grains dropped when large: anyone can say hello."""
    if len(codec.pack(hello.grains)) + len(codec.pack(hello.functions)) <= MAX_PENDING_GRAINS:
        return hello
    return m.Hello(
        id=hello.id,
        grains={"grains_dropped": "too large before the key was accepted"},
        version=hello.version,
        functions=[],
        protocol=hello.protocol,
    )
