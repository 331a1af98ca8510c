"""A subscriber of the master's local bus (``event watch``, the demo, plugins on the master host).

``BusWatcher`` connects to the owner-only ipc bus, proves its subscription is live with a
probe (the master publishes a token until the watcher sees it), then yields the events
whose tag matches a glob (``tag_matches``, as everywhere a tag glob is taken).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq

from reactord.control import ControlClient
from reactord.protocol import codec
from reactord.protocol.errors import DecodeError, RequestError
from reactord.protocol.tags import tag_matches, validate_pattern


class BusWatcher:
    def __init__(self, bus_path: Path, control: ControlClient) -> None:
        self.control = control
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sock.connect(f"ipc://{bus_path}")

    def wait_live(self, timeout: float = 10.0) -> None:
        """Return once this subscription is live; ``RequestError`` if it is not within ``timeout``."""
        token = os.urandom(8).hex()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.control.call("bus.probe", token=token)
            probe_deadline = time.monotonic() + 0.2
            while (left := probe_deadline - time.monotonic()) > 0:
                if not self.sock.poll(int(left * 1000) + 1):
                    break
                if self._decode(self.sock.recv()) == ["probe", token]:
                    return
        raise RequestError(f"could not subscribe to the master's bus within {timeout:g}s")

    def events(self, timeout: float | None = None, pattern: str = "**") -> Iterator[dict[str, Any]]:
        """Events whose tag matches ``pattern`` as they are published, until ``timeout``
        seconds pass (None: forever)."""
        return matching(pattern, self._published(timeout))

    def _published(self, timeout: float | None) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout if timeout is not None else None
        while True:
            wait_ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self.sock.poll(wait_ms):
                return
            value = self._decode(self.sock.recv())
            if _is_event(value):
                yield value[1]

    @staticmethod
    def _decode(frame: bytes) -> Any:
        try:
            return codec.unpack(frame)
        except DecodeError:
            return None

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def matching(pattern: str, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The events (as published on the bus) whose tag matches the glob ``pattern``."""
    validate_pattern(pattern)
    return (event for event in events if tag_matches(pattern, event["tag"]))


def _is_event(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] == "event" and isinstance(value[1], dict)
