"""The master's store of minion keys by state: pending, accepted, rejected, denied.

Keys live as files ``<pki_dir>/minions/<state>/<id>`` holding the Z85 public key (denied may
hold several, one per line), and in memory as a map from raw key to (id, state) that ZAP and
every received message consult. A change on disk and in memory happens in one call, so
revoking a key takes effect for the very next message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from reactord.base.errors import KeyStoreError
from reactord.protocol.keys import ensure_private_dir, fingerprint, write_file_atomic, z85_decode, z85_encode
from reactord.protocol.tags import is_valid_minion_id

log = logging.getLogger("reactord.keys")

ACCEPTED, PENDING, REJECTED, DENIED = "accepted", "pending", "rejected", "denied"
STATES = (ACCEPTED, PENDING, REJECTED, DENIED)
MAX_DENIED_PER_ID = 16


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: str
    state: str
    key: bytes

    @property
    def finger(self) -> str:
        return fingerprint(self.key)


class KeyStore:
    def __init__(self, pki_dir: Path, *, auto_accept: bool = False, max_pending: int = 1000) -> None:
        self.root = ensure_private_dir(pki_dir / "minions")
        self.auto_accept = auto_accept
        self.max_pending = max_pending
        self._by_key: dict[bytes, KeyEntry] = {}
        self._by_id: dict[str, dict[str, list[bytes]]] = {}
        #: Called with a minion id after its keys changed here (cluster mode shares them).
        self.on_change: Callable[[str], None] | None = None
        for state in STATES:
            ensure_private_dir(self.root / state)
        self._load()

    # -- reading ----------------------------------------------------------------------------

    def lookup(self, key: bytes) -> KeyEntry | None:
        return self._by_key.get(key)

    def accepted_id(self, key: bytes) -> str | None:
        """The minion id this key authenticates, if and only if the key is accepted."""
        entry = self._by_key.get(key)
        return entry.id if entry is not None and entry.state == ACCEPTED else None

    def accepted_key(self, minion_id: str) -> bytes | None:
        keys = self._by_id.get(minion_id, {}).get(ACCEPTED)
        return keys[0] if keys else None

    def state_of(self, minion_id: str) -> str | None:
        states = self._by_id.get(minion_id, {})
        for state in STATES:
            if states.get(state):
                return state
        return None

    def listing(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {state: [] for state in STATES}
        for minion_id, states in self._by_id.items():
            for state, keys in states.items():
                if keys:
                    out[state].append(minion_id)
        return {state: sorted(ids) for state, ids in out.items()}

    def entries(self, minion_id: str | None = None) -> list[KeyEntry]:
        items = (
            [(minion_id, self._by_id.get(minion_id, {}))]
            if minion_id is not None
            else sorted(self._by_id.items())
        )
        return [
            KeyEntry(mid, state, key)
            for mid, states in items
            for state in STATES
            for key in states.get(state, [])
        ]

    def accepted_ids(self) -> list[str]:
        return sorted(mid for mid, s in self._by_id.items() if s.get(ACCEPTED))

    # -- the hello path ---------------------------------------------------------------------

    def register(self, minion_id: str, key: bytes) -> str:
        """Place a key seen in a ``hello`` and return its state.

        A key already known keeps its state (a key claiming a second id is denied without
        being stored); a new key for an id that already has one is denied; a new key for a
        new id is pending (accepted with ``auto_accept``), within ``max_pending``.
        """
        entry = self._by_key.get(key)
        if entry is not None:
            return entry.state if entry.id == minion_id else DENIED
        states = self._by_id.get(minion_id, {})
        if any(states.get(s) for s in (ACCEPTED, PENDING, REJECTED)):
            if len(states.get(DENIED, [])) >= MAX_DENIED_PER_ID:
                return DENIED
            self._add(minion_id, DENIED, key)
            log.warning(
                "denied a new key for %s: that id already has a key", minion_id, extra={"minion": minion_id}
            )
            return DENIED
        if self.auto_accept:
            self._add(minion_id, ACCEPTED, key)
            log.info("auto-accepted the key of %s", minion_id, extra={"minion": minion_id})
            return ACCEPTED
        if len(self.listing()[PENDING]) >= self.max_pending:
            log.warning("refused a key for %s: %d keys already pending", minion_id, self.max_pending)
            return REJECTED
        self._add(minion_id, PENDING, key)
        log.info("new key pending for %s (%s)", minion_id, fingerprint(key), extra={"minion": minion_id})
        return PENDING

    # -- operator actions -------------------------------------------------------------------

    def accept(self, minion_id: str) -> KeyEntry:
        return self._move(minion_id, (PENDING, REJECTED), ACCEPTED)

    def reject(self, minion_id: str) -> KeyEntry:
        return self._move(minion_id, (PENDING, ACCEPTED), REJECTED)

    def delete(self, minion_id: str) -> list[KeyEntry]:
        removed = self.entries(minion_id)
        if not removed:
            raise KeyStoreError(f"no key for {minion_id!r}")
        for entry in removed:
            self._by_key.pop(entry.key, None)
            (self.root / entry.state / minion_id).unlink(missing_ok=True)
        self._by_id.pop(minion_id, None)
        self._changed(minion_id)
        return removed

    def preaccept(self, minion_id: str, key: bytes) -> None:
        """Store ``key`` as accepted for ``minion_id`` directly (``reactord init --accept-local``)."""
        if self.entries(minion_id):
            raise KeyStoreError(f"{minion_id!r} already has a key")
        self._add(minion_id, ACCEPTED, key)

    # -- internals --------------------------------------------------------------------------

    def _move(self, minion_id: str, sources: Iterable[str], target: str) -> KeyEntry:
        """All or nothing: the target file is written first, then the source file; when either
        write fails, the files and memory are as they were and ``KeyStoreError`` says why."""
        states = self._by_id.get(minion_id, {})
        for state in sources:
            keys = states.get(state)
            if keys:
                key = keys[0]
                before = list(states.get(target, []))
                left = [k for k in keys if k != key]
                try:
                    self._write(minion_id, target, [*before, key])
                    try:
                        self._write(minion_id, state, left)
                    except OSError:
                        self._write(minion_id, target, before)
                        raise
                except OSError as exc:
                    raise KeyStoreError(
                        f"cannot move the key of {minion_id!r} to {target}: {exc.strerror or exc}; "
                        "nothing changed"
                    ) from exc
                states[state] = left
                states[target] = [*before, key]
                entry = KeyEntry(minion_id, target, key)
                self._by_key[key] = entry
                self._changed(minion_id)
                return entry
        have = self.state_of(minion_id)
        if have is None:
            raise KeyStoreError(f"no key for {minion_id!r}")
        raise KeyStoreError(f"the key of {minion_id!r} is {have}; cannot make it {target}")

    def _add(self, minion_id: str, state: str, key: bytes) -> None:
        keys = [*self._by_id.get(minion_id, {}).get(state, []), key]
        self._write(minion_id, state, keys)  # the file first: a failed write changes nothing
        self._by_id.setdefault(minion_id, {})[state] = keys
        self._by_key[key] = KeyEntry(minion_id, state, key)
        self._changed(minion_id)

    def _write(self, minion_id: str, state: str, keys: list[bytes]) -> None:
        path = self.root / state / minion_id
        if keys:
            write_file_atomic(path, "".join(z85_encode(k) + "\n" for k in keys).encode())
        else:
            path.unlink(missing_ok=True)

    def _changed(self, minion_id: str) -> None:
        """Files and memory agree again: tell whoever shares the keys."""
        if self.on_change is not None:
            self.on_change(minion_id)

    # -- cluster mode: the keys as every master shares them -----------------------------------------

    def states(self, minion_id: str) -> dict[str, list[bytes]]:
        """The keys of ``minion_id`` by state (the empty states left out)."""
        return {state: list(keys) for state, keys in self._by_id.get(minion_id, {}).items() if keys}

    def replace(self, minion_id: str, states: dict[str, list[bytes]]) -> list[KeyEntry]:
        """Make the keys of ``minion_id`` what another master says they are (no ``on_change``);
        the entries that were here and are gone or changed state."""
        before = {entry.key: entry for entry in self.entries(minion_id)}
        for state in STATES:
            keys = [
                k for k in states.get(state, []) if k not in self._by_key or self._by_key[k].id == minion_id
            ]
            if keys != self._by_id.get(minion_id, {}).get(state, []):
                self._write(minion_id, state, keys)
        for key in before:
            self._by_key.pop(key, None)
        self._by_id.pop(minion_id, None)
        for state in STATES:
            for key in states.get(state, []):
                if key in self._by_key:
                    continue
                self._by_id.setdefault(minion_id, {}).setdefault(state, []).append(key)
                self._by_key[key] = KeyEntry(minion_id, state, key)
        return [e for k, e in before.items() if k not in self._by_key or self._by_key[k].state != e.state]

    def _load(self) -> None:
        for state in STATES:
            for path in sorted((self.root / state).iterdir()):
                if path.name.startswith(".") or not is_valid_minion_id(path.name):
                    continue
                for line in path.read_text(encoding="ascii", errors="replace").split():
                    try:
                        key = z85_decode(line.strip())
                    except ValueError:
                        log.warning("ignoring a malformed key in %s", path)
                        continue
                    if key in self._by_key:
                        log.warning("ignoring a duplicate key in %s", path)
                        continue
                    self._by_id.setdefault(path.name, {}).setdefault(state, []).append(key)
                    self._by_key[key] = KeyEntry(path.name, state, key)
