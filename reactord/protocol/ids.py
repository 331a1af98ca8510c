"""Unique, time-sortable identifiers for events and jobs (ULID layout, Crockford base32)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id(now: float | None = None) -> str:
    """A 26-character id: 48 bits of milliseconds then 80 bits of randomness.

    Ids made by one process are strictly increasing, even within one millisecond, so sorting
    ids sorts by creation time.
    """
    global _last_ms, _last_rand
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
        _last_ms, _last_rand = ms, rand
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def id_time(identifier: str) -> float:
    """The creation time (seconds since the epoch) encoded in an id from ``new_id``."""
    value = 0
    for char in identifier.upper():
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 80) / 1000.0


def is_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text.upper())
