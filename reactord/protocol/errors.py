"""The error tree of reactord; every error the project raises derives from ``ReactordError``.

ReactordError
 +-- DecodeError        bytes from outside that are not a valid message (keeps the cause)
 +-- EncodeError        a value the wire cannot carry (an int over 64 bits, too deep, an object)
 +-- ConfigError        a config file or key that is wrong (names the file and the key)
 +-- KeyFileError       a key file that cannot be read, written or trusted
 +-- SignatureError     a signed message whose signature does not verify
 +-- TagError           a tag or tag pattern that is not well formed
 +-- RequestError       a request on a local unix socket that failed (``code`` says why)
 |    +-- Unreachable    nobody listens on that socket (the CLI exits 3)
 +-- StorageError       a daemon's SQLite file cannot be read or written (names the file)
      +-- StorageFull    no space left (or no quota): transient, the daemon waits and retries
      +-- StorageDamaged the file is not an intact database: the operator must act (exit 2)

Packages add their own branches under the root (``reactord.base.errors``, ``minion.errors``).
"""

from __future__ import annotations


class ReactordError(Exception):
    """Root of every error raised by reactord and its minion."""


class DecodeError(ReactordError):
    """Bytes that do not decode into a valid message."""


class EncodeError(ReactordError):
    """A value msgpack cannot carry: an integer beyond 64 bits, nesting too deep, an object."""


class ConfigError(ReactordError):
    """A configuration problem, reported as one line naming the file and the key."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {message}")


class KeyFileError(ReactordError):
    """A key file that cannot be read, written, or that does not match what is pinned."""


class SignatureError(ReactordError):
    """A signed message whose signature does not verify against the pinned key."""


class TagError(ReactordError):
    """A malformed tag or tag pattern."""


class RequestError(ReactordError):
    """A request on a local socket (master control, minion local) that failed."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


class Unreachable(RequestError):
    """No daemon answers on the socket."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "unreachable")


class StorageError(ReactordError):
    """A daemon's SQLite file that cannot be read or written; the message names the file."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class StorageFull(StorageError):
    """No space left on the file's filesystem (or no quota): nothing was written; retry later."""


class StorageDamaged(StorageError):
    """The file is not an intact database; the daemon cannot use it until the operator acts."""
