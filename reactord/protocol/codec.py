"""The one msgpack codec of the wire: bounded, strict, and the one place decoding can fail."""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from reactord.protocol.errors import DecodeError, EncodeError

#: Largest single frame any socket accepts unless configured otherwise (libzmq enforces
#: it too, through ``MAXMSGSIZE``, so an oversized frame never reaches Python).
MAX_FRAME = 1 << 20


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


_local = threading.local()


def pack(obj: Any) -> bytes:
    """Serialize ``obj``; raises ``EncodeError`` for values the wire cannot carry."""
    packer = getattr(_local, "packer", None)
    if packer is None:  # one packer per thread: making one per call costs more than packing
        packer = _local.packer = msgpack.Packer(use_bin_type=True, datetime=False, autoreset=True)
    try:
        data: bytes = packer.pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        packer.reset()
        raise EncodeError(f"cannot be sent: {exc}") from None
    except BaseException:
        packer.reset()
        raise
    return data


def packer() -> msgpack.Packer:
    """A packer with the codec's settings, for frames assembled from pre-packed parts."""
    return msgpack.Packer(use_bin_type=True, datetime=False, autoreset=True)


def unpack(data: bytes, *, max_size: int = MAX_FRAME) -> Any:
    """Decode one frame, refusing anything over ``max_size`` or not exactly one value.

    Every failure (truncated input, extra bytes, nesting too deep, non-string map keys,
    extension types, oversized containers) becomes one ``DecodeError`` keeping its cause.
    """
    if len(data) > max_size:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max_size,
            max_map_len=max_size // 2,
        )
    except DecodeError:
        raise
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise DecodeError(f"invalid msgpack: {type(exc).__name__}: {exc}") from exc
