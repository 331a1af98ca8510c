"""Key material: CURVE key pairs and Ed25519 signing keys as owner-only PEM files.

CURVE (libzmq's CurveZMQ) uses Curve25519; an X25519 key pair from ``cryptography`` is one,
so keys are kept as standard PEM files (PKCS#8 secret 0600, SubjectPublicKeyInfo public) and
handed to libzmq as Z85 text. Fingerprints are SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from zmq.utils import z85

from reactord.protocol.errors import KeyFileError, SignatureError

_RAW = serialization.Encoding.Raw
_PEM = serialization.Encoding.PEM


def fingerprint(public_raw: bytes) -> str:
    """``aa:bb:...``: SHA-256 of the raw public key, the form operators compare by eye."""
    digest = hashlib.sha256(public_raw).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(text: str) -> str:
    hexdigits = "".join(c for c in text.lower() if c in "0123456789abcdef")
    if len(hexdigits) != 64:
        raise ValueError("a fingerprint is 64 hex digits (SHA-256), colons optional")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


def z85_encode(raw: bytes) -> str:
    return z85.encode(raw).decode("ascii")


def z85_decode(text: str | bytes) -> bytes:
    data = text.encode("ascii") if isinstance(text, str) else text
    if len(data) != 40:
        raise ValueError("a Z85 CURVE key is 40 characters")
    raw = z85.decode(data)
    assert isinstance(raw, bytes)
    return raw


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700; refuse a symlink."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise KeyFileError(f"{path} is not a directory")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file created with ``mode``, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_secret_pem(path: Path) -> bytes:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise KeyFileError(f"{path}: refusing a symlinked key file")
    if info.st_mode & 0o077:
        raise KeyFileError(f"{path}: secret key readable by others (mode {info.st_mode & 0o777:o})")
    return path.read_bytes()


# The PEM helpers, once for both kinds of key (X25519 for CURVE, Ed25519 for signing); each
# caller checks that what it read is its kind.


def _public_pem(public: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return public.public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _create_pair(directory: Path, name: str, private: X25519PrivateKey | Ed25519PrivateKey) -> None:
    """Write ``<name>.pem`` (PKCS#8, 0600), then ``<name>.pub`` (0644)."""
    write_file_atomic(
        directory / f"{name}.pem",
        private.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    write_file_atomic(directory / f"{name}.pub", _public_pem(private.public_key()), mode=0o644)


def _load_private_pem(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(_read_secret_pem(path), None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key: {exc}") from exc


def _load_public_pem(path: Path) -> PublicKeyTypes:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """A CURVE key pair as raw 32-byte values."""

    public: bytes
    secret: bytes

    @property
    def public_z85(self) -> bytes:
        return z85.encode(self.public)

    @property
    def secret_z85(self) -> bytes:
        return z85.encode(self.secret)

    @property
    def finger(self) -> str:
        return fingerprint(self.public)

    @classmethod
    def generate(cls) -> CurveKeys:
        secret = X25519PrivateKey.generate()
        return cls.from_private(secret)

    @classmethod
    def from_private(cls, secret: X25519PrivateKey) -> CurveKeys:
        return cls(
            public=secret.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw),
            secret=secret.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        )

    @classmethod
    def load_or_create(cls, directory: Path, name: str) -> CurveKeys:
        """Load ``<name>.pem``/``<name>.pub`` from ``directory``, creating them on first use."""
        ensure_private_dir(directory)
        secret_path, public_path = directory / f"{name}.pem", directory / f"{name}.pub"
        if not secret_path.exists():
            private = X25519PrivateKey.generate()
            _create_pair(directory, name, private)
            return cls.from_private(private)
        loaded = _load_private_pem(secret_path)
        if not isinstance(loaded, X25519PrivateKey):
            raise KeyFileError(f"{secret_path}: not an X25519 (CURVE) key")
        keys = cls.from_private(loaded)
        if not public_path.exists():
            write_file_atomic(public_path, public_pem(keys.public), mode=0o644)
        return keys


def public_pem(public_raw: bytes) -> bytes:
    return _public_pem(X25519PublicKey.from_public_bytes(public_raw))


def load_public_pem(path: Path) -> bytes:
    """The raw 32-byte CURVE public key in a PEM file."""
    loaded = _load_public_pem(path)
    if not isinstance(loaded, X25519PublicKey):
        raise KeyFileError(f"{path}: not an X25519 (CURVE) public key")
    return loaded.public_bytes(_RAW, serialization.PublicFormat.Raw)


class Signer:
    """An Ed25519 key that signs what must stay verifiable beyond one hop (commands)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @classmethod
    def load_or_create(cls, directory: Path, name: str) -> Signer:
        ensure_private_dir(directory)
        secret_path = directory / f"{name}.pem"
        if not secret_path.exists():
            private = Ed25519PrivateKey.generate()
            _create_pair(directory, name, private)
            return cls(private)
        loaded = _load_private_pem(secret_path)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise KeyFileError(f"{secret_path}: not an Ed25519 signing key")
        return cls(loaded)


def verify_signature(public_raw: bytes, signature: bytes, data: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` is ``public_raw``'s signature of ``data``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("signature does not verify against the pinned master key") from exc


def signing_public_pem(public_raw: bytes) -> bytes:
    return _public_pem(Ed25519PublicKey.from_public_bytes(public_raw))


def load_signing_public_pem(path: Path) -> bytes:
    """The raw 32-byte Ed25519 public key in a PEM file."""
    loaded = _load_public_pem(path)
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return loaded.public_bytes(_RAW, serialization.PublicFormat.Raw)
