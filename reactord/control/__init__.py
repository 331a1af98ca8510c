"""The control socket: how the CLI talks to the running master (unix socket, owner only)."""
