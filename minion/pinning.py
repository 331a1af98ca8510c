"""Pinning the master's keys: the CURVE key (before connecting) and the signing key (in welcome).

Order of trust for the CURVE key: a key already pinned in ``<pki_dir>/master.pub``; else
the key the master's key service offers, checked against ``master_finger`` when set, or
trusted on first use with a warning. A pinned key never changes by itself: a master that
offers another one is refused until an operator removes the pinned file. With several
masters listed, one that offers another key is refused and passed over, never trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import zmq
import zmq.asyncio

from minion.config import MinionConfig
from minion.connection import MasterList
from minion.errors import MasterKeyError
from reactord.protocol import codec
from reactord.protocol.errors import DecodeError, KeyFileError
from reactord.protocol.keys import (
    fingerprint,
    load_public_pem,
    load_signing_public_pem,
    public_pem,
    signing_public_pem,
    write_file_atomic,
)

log = logging.getLogger("minion.pinning")


def pinned_key_path(config: MinionConfig) -> Path:
    return config.pki_dir / "master.pub"


def pinned_signing_path(config: MinionConfig) -> Path:
    return config.pki_dir / "master_sign.pub"


def load_pinned(config: MinionConfig) -> bytes | None:
    """The pinned master key, checked against ``master_finger``; None if nothing is pinned."""
    path = pinned_key_path(config)
    if not path.exists():
        return None
    key = load_public_pem(path)
    if config.master_finger and fingerprint(key) != config.master_finger:
        raise MasterKeyError(
            f"{path} pins a master key with fingerprint {fingerprint(key)}, but master_finger in "
            f"{config.path} is {config.master_finger}; remove {path} to pin the configured master"
        )
    return key


async def fetch_master_key(ctx: zmq.asyncio.Context, endpoint: str, timeout: float) -> bytes:
    """Ask the master's key service for its public key (unauthenticated: check it after)."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, 4096)
    try:
        sock.connect(endpoint)
        await sock.send(b"key")
        if not await sock.poll(timeout * 1000):
            raise MasterKeyError(f"no answer from the master's key service at {endpoint}")
        data = await sock.recv()
    finally:
        sock.close(linger=0)
    try:
        value = codec.unpack(data, max_size=4096)
    except DecodeError as exc:
        raise MasterKeyError(f"bad answer from the key service at {endpoint}: {exc}") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != "master_key"
        or not isinstance(value[1], dict)
        or not isinstance(value[1].get("key"), bytes)
        or len(value[1]["key"]) != 32
    ):
        raise MasterKeyError(f"bad answer from the key service at {endpoint}")
    return value[1]["key"]  # type: ignore[no-any-return]


async def obtain_master_key(
    ctx: zmq.asyncio.Context,
    config: MinionConfig,
    masters: MasterList,
    *,
    sleep: Callable[[float], Awaitable[None]],
    stopping: Callable[[], bool],
) -> bytes | None:
    """The pinned master key, or the first key a listed master offers that may be pinned.

    Starts with ``masters.current``; a master that does not answer or offers a key that is
    refused is passed over for the next (``masters`` then names the one whose key was
    pinned). After a full round, or between two tries with one master, it waits 0.5s,
    doubling up to ``retry_max``. None when ``stopping`` before a key was pinned.
    """
    pinned = load_pinned(config)
    if pinned is not None:
        return pinned
    delay = 0.5
    while not stopping():
        host = masters.current
        try:
            offered = await fetch_master_key(ctx, config.endpoint(host, config.key_port), 2.0)
            return pin(config, offered, source=f"the master at {host}" if masters.several else "the master")
        except MasterKeyError as exc:
            if not masters.several:
                log.warning("%s; retrying in %.1fs", exc, delay)
            elif masters.advance():
                log.warning("%s; trying %s (%s) in %.1fs", exc, masters.current, masters.position, delay)
            else:
                log.warning("%s; trying %s (%s)", exc, masters.current, masters.position)
                continue
        await sleep(delay)
        delay = min(delay * 2, config.retry_max)
    return None


async def diagnose(ctx: zmq.asyncio.Context, config: MinionConfig, host: str, pinned: bytes) -> None:
    """After a master stopped answering: log it when it offers another key than the pinned one."""
    try:
        offered = await fetch_master_key(ctx, config.endpoint(host, config.key_port), 1.0)
    except MasterKeyError:
        return
    if offered != pinned:
        log.error(
            "the master at %s offers key %s, not the pinned %s: refusing it (if the master "
            "was re-keyed on purpose, remove %s)",
            host,
            fingerprint(offered),
            fingerprint(pinned),
            pinned_key_path(config),
        )


def pin(config: MinionConfig, offered: bytes, source: str = "the master") -> bytes:
    """Check an offered key against ``master_finger`` (or trust it on first use) and pin it.

    ``source`` names who offered it in the refusal (``the master at 10.0.0.2``).
    """
    finger = fingerprint(offered)
    if config.master_finger:
        if finger != config.master_finger:
            raise MasterKeyError(
                f"{source} offers a key with fingerprint {finger}, but master_finger is "
                f"{config.master_finger}: refusing it"
            )
        log.info("master key %s matches master_finger; pinned", finger)
    else:
        log.warning(
            "trusting the master key %s on first use (set master_finger to verify it); pinned",
            finger,
        )
    write_file_atomic(pinned_key_path(config), public_pem(offered), mode=0o644)
    return offered


def check_signing_key(config: MinionConfig, offered: bytes) -> bytes:
    """Pin the master's signing key on first welcome; refuse a changed one."""
    path = pinned_signing_path(config)
    if path.exists():
        try:
            pinned = load_signing_public_pem(path)
        except KeyFileError as exc:
            raise MasterKeyError(str(exc)) from exc
        if pinned != offered:
            raise MasterKeyError(
                f"the master's signing key changed (pinned in {path}); refusing its commands"
            )
        return pinned
    write_file_atomic(path, signing_public_pem(offered), mode=0o644)
    return offered
