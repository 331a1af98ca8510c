"""The names cluster mode uses in the engine (DESIGN.md §9) and where a source's events go.

An event from ``source`` is published on ``rd.ev.<p>.<token>`` of the stream ``RDEV``, where
``p = partition_of(source, P)`` (P fixed when the stream is created) and ``token`` is the
source as one subject token: letters, digits, ``-`` and ``_`` as they are, every other byte
(``.`` included, so a dotted minion id stays one token) as ``%XX``. The encoding is
one-to-one, so the subject names its source; the owner of partition 7 consumes
``rd.ev.7.*``. The hash is blake2b, the same in every process and on every master (Python's
``hash()`` is salted per process).
"""

from __future__ import annotations

import hashlib
import re

from reactord.base.errors import ClusterError

EVENTS_STREAM = "RDEV"
EVENTS_SUBJECTS = "rd.ev.>"
LEASES_BUCKET = "rd_leases"
#: Action intents: ``rd.act.<p>``, deduplicated by the action's id (``Nats-Msg-Id``).
ACTIONS_STREAM = "RDACT"
ACTIONS_SUBJECTS = "rd.act.>"
#: Shared minion keys, presence, and each partition's fence (owner and applied sequence).
KEYS_BUCKET = "rd_keys"
PRESENCE_BUCKET = "rd_presence"
STATE_BUCKET = "rd_state"
#: Core subjects: commands for the minions a master holds, returns looking for their job.
COMMANDS = "rd.cmd.{member}"
RETURNS = "rd.ret"

#: The stream's metadata key holding its partition count (compared at every start).
PARTITIONS_KEY = "reactord.partitions"

_PLAIN = re.compile(rb"[A-Za-z0-9_-]")


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of ``parts``, the same in every process (``\\0`` keeps them apart)."""
    data = "\0".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def partition_of(source: str, partitions: int) -> int:
    """The partition of ``source``'s events, in ``range(partitions)``."""
    if partitions < 1:
        raise ClusterError(f"the partition count must be at least 1, not {partitions}")
    return stable_hash(source) % partitions


def source_token(source: str) -> str:
    """``source`` as one subject token (see the module docstring)."""
    if not source:
        raise ClusterError("an event source cannot be empty")
    return "".join(
        chr(byte) if _PLAIN.fullmatch(bytes([byte])) else f"%{byte:02X}" for byte in source.encode()
    )


def event_subject(source: str, partitions: int) -> str:
    """``rd.ev.<p>.<token>``: where ``source``'s events are published."""
    return f"rd.ev.{partition_of(source, partitions)}.{source_token(source)}"


def partition_filter(partition: int) -> str:
    """The subject filter of one partition's events, for its owner's consumer."""
    return f"rd.ev.{partition}.*"


def action_subject(partition: int) -> str:
    return f"rd.act.{partition}"


def kv_key(name: str) -> str:
    """A minion id (or any name) as a KV key: the subject token encoding, ``%`` as ``=``
    (KV keys allow letters, digits, ``-_=./``; ``.`` would split it in two)."""
    return source_token(name).replace("%", "=")


def kv_name(key: str) -> str:
    """The name ``kv_key`` made ``key`` from."""
    raw = key.replace("=", "%").encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b"%" and i + 3 <= len(raw):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="replace")
