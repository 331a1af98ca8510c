"""Unique, time-sortable identifiers for events and jobs (ULID layout, Crockford base32)."""

from __future__ import annotations

import hashlib
import math
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
    return new_ids(1, now)[0]


def new_ids(count: int, now: float | None = None) -> list[str]:
    """``count`` consecutive ids (one lock, one clock read, one random draw: the hot path)."""
    global _last_ms, _last_rand
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            first = _last_rand + 1
        else:
            first = int.from_bytes(os.urandom(10), "big") >> 2  # room to count up
        _last_ms, _last_rand = ms, first + count - 1
    prefix = _encode(ms, 10)
    ids: list[str] = []
    rand, end = first, first + count
    while rand < end:  # consecutive ids share all but the last two digits, 1,024 at a time
        head = prefix + _encode((rand & _RAND_MASK) >> 10, 14)
        low = rand & 1023
        run = min(1024 - low, end - rand)
        ids.extend([head + _PAIRS[low + n] for n in range(run)])
        rand += run
    return ids


def derived_id(when: float, *parts: str) -> str:
    """An id in ``new_id``'s layout whose 80 low bits hash ``parts``: the same in every
    process for the same inputs (a cluster's masters name one action alike)."""
    ms = _millis(when)
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=10).digest()
    return _encode(ms, 10) + _encode(int.from_bytes(digest, "big"), 16)


_RAND_MASK = (1 << 80) - 1
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits at a time


def _encode(value: int, width: int) -> str:
    """``value`` as ``width`` Crockford base32 digits (``width`` even)."""
    out = []
    for _ in range(width // 2):
        out.append(_PAIRS[value & 1023])
        value >>= 10
    return "".join(reversed(out))


def id_time(identifier: str) -> float:
    """The creation time (seconds since the epoch) encoded in an id from ``new_id``."""
    value = 0
    for char in identifier.upper():
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 80) / 1000.0


def is_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text.upper())


def id_floor(when: float) -> str:
    """The smallest id made at or after ``when``: ids compare as times (``id >= id_floor(t)``).

    Clamped to what an id can hold (48 bits of milliseconds): a bound far outside still orders
    right instead of wrapping around; NaN counts as the epoch."""
    return _encode(_millis(when), 10) + "0" * 16


def _millis(when: float) -> int:
    """``when`` in milliseconds, within what an id holds (48 bits); NaN is the epoch. Clamped
    before ``int()``: a time near 1.8e308 is infinite in milliseconds, which int() refuses."""
    if math.isnan(when):
        return 0
    return int(min(max(when * 1000, 0.0), (1 << 48) - 1))
