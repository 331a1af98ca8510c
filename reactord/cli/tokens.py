"""``reactord token ...``: API tokens for the HTTP API and the dashboard."""

from __future__ import annotations

import time
from typing import Any

import click

from reactord.cli.common import client, config_option, handle_errors, json_option, print_json, print_table
from reactord.protocol.durations import format_duration, parse_duration


@click.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke. Roles: read (look), operate (also fire
    events, run functions, retry dead letters), admin (also keys, rule reloads)."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["read", "operate", "admin"]), help="what it may do")
@click.option(
    "--name", default="token", show_default=True, help="a name to recognise it by (1-64 of A-Z a-z 0-9 _.@-)"
)
@click.option("--expires", "expires", default=None, help="valid this long (30d, 12h); default: until revoked")
@config_option
@json_option
@handle_errors
def token_create(role: str, name: str, expires: str | None, config_path: str | None, as_json: bool) -> None:
    """Create a token. It is printed this once: the master keeps only its hash."""
    args: dict[str, object] = {"role": role, "name": name}
    seconds = None
    if expires is not None:
        try:
            seconds = args["expires_in"] = parse_duration(expires)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from exc
    made = client(config_path).call("token.create", **args)
    if as_json:
        print_json(made)
        return
    click.echo(made["token"])
    until = f", expires in {format_duration(seconds)}" if seconds is not None else ""
    click.echo(f"(token {made['id']}, {made['name']}, role {made['role']}{until}; shown this once)", err=True)


@token.command("list")
@config_option
@json_option
@handle_errors
def token_list(config_path: str | None, as_json: bool) -> None:
    """List tokens (never their secrets): id, name, role, and whether revoked or expired."""
    tokens = client(config_path).call("token.list")
    if as_json:
        print_json(tokens)
        return
    now = time.time()

    def state(t: dict[str, Any]) -> str:
        if t["revoked"]:
            return "revoked"
        if t["expires"] is not None and t["expires"] <= now:
            return "expired"
        return "active" if t["expires"] is None else f"active, {format_duration(t['expires'] - now)} left"

    print_table(["id", "name", "role", "state"], [[t["id"], t["name"], t["role"], state(t)] for t in tokens])


@token.command("revoke")
@click.argument("token_id")
@config_option
@json_option
@handle_errors
def token_revoke(token_id: str, config_path: str | None, as_json: bool) -> None:
    """Revoke a token by its id (or its name, when only one token has it); at once."""
    revoked = client(config_path).call("token.revoke", id=token_id)
    if as_json:
        print_json(revoked)
        return
    click.echo(f"revoked {revoked['id']} ({revoked['name']}, {revoked['role']})")


COMMANDS = [token]
