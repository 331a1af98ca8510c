"""The control socket: how the CLI talks to the running master (unix socket, owner only).

This module is the client's side and the server's name. The master's side is one module per
area of operations (``status_ops``, ``keys_ops``, ``fleet_ops``, ``jobs_ops``, ``events_ops``,
``rules_ops``, ``deadletters_ops``), each ``async def op(parts, args)`` over the narrow parts
of its area; ``registry.handlers`` names them all. Importing this module loads none of them.
"""

from __future__ import annotations

from pathlib import Path

from reactord.protocol.localsock import LocalClient, LocalServer, Stream

__all__ = ["ControlClient", "ControlServer", "Stream"]

ControlServer = LocalServer


class ControlClient(LocalClient):
    """The CLI's client of the master's control socket."""

    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        super().__init__(path, timeout, daemon="master")
