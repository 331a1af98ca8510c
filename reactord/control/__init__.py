"""The control socket: how the CLI talks to the running master (unix socket, owner only)."""

from __future__ import annotations

from pathlib import Path

from reactord.protocol.localsock import LocalClient, LocalServer, Stream

__all__ = ["ControlClient", "ControlServer", "Stream"]

ControlServer = LocalServer


class ControlClient(LocalClient):
    """The CLI's client of the master's control socket."""

    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        super().__init__(path, timeout, daemon="master")
