"""``reactord key ...``: accept, reject, delete and inspect minion keys."""

from __future__ import annotations

import click

from reactord.cli.common import client, config_option, handle_errors, json_option, print_json, print_table


@click.group()
def key() -> None:
    """Manage minion keys: pending, accepted, rejected, denied."""


@key.command("list")
@config_option
@json_option
@handle_errors
def key_list(config_path: str | None, as_json: bool) -> None:
    """List minion keys by state."""
    listing = client(config_path).call("key.list")
    if as_json:
        print_json(listing)
        return
    for state in ("accepted", "pending", "rejected", "denied"):
        click.echo(f"{state.capitalize()} keys:")
        for minion_id in listing.get(state, []):
            click.echo(f"  {minion_id}")


@key.command("accept")
@click.argument("minion_id", required=False)
@click.option("--all", "accept_all", is_flag=True, help="accept every pending key")
@config_option
@json_option
@handle_errors
def key_accept(minion_id: str | None, accept_all: bool, config_path: str | None, as_json: bool) -> None:
    """Accept the pending (or rejected) key of MINION_ID, or --all pending keys."""
    if bool(minion_id) == accept_all:
        raise click.UsageError("give a MINION_ID or --all")
    result = client(config_path).call("key.accept", id=minion_id, all=accept_all)
    if as_json:
        print_json(result)
    elif result["accepted"]:
        click.echo("accepted: " + ", ".join(result["accepted"]))
    else:
        click.echo("no pending keys")


@key.command("reject")
@click.argument("minion_id")
@config_option
@json_option
@handle_errors
def key_reject(minion_id: str, config_path: str | None, as_json: bool) -> None:
    """Reject the key of MINION_ID; a connected minion is cut off at once."""
    result = client(config_path).call("key.reject", id=minion_id)
    print_json(result) if as_json else click.echo(f"rejected: {minion_id}")


@key.command("delete")
@click.argument("minion_id")
@config_option
@json_option
@handle_errors
def key_delete(minion_id: str, config_path: str | None, as_json: bool) -> None:
    """Delete every key of MINION_ID; a connected minion is cut off at once."""
    result = client(config_path).call("key.delete", id=minion_id)
    print_json(result) if as_json else click.echo(f"deleted: {minion_id}")


@key.command("finger")
@click.argument("minion_id", required=False)
@config_option
@json_option
@handle_errors
def key_finger(minion_id: str | None, config_path: str | None, as_json: bool) -> None:
    """Show key fingerprints: the master's, and the minions' (or MINION_ID's)."""
    result = client(config_path).call("key.finger", id=minion_id)
    if as_json:
        print_json(result)
        return
    click.echo(f"master: {result['master']}")
    print_table(
        ["id", "state", "fingerprint"], [[e["id"], e["state"], e["finger"]] for e in result["minions"]]
    )


COMMANDS = [key]
