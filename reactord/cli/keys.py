"""``reactord key ...``: accept, reject, delete and inspect minion keys."""

from __future__ import annotations

import sys
from typing import Any

import click

from reactord.cli.common import (
    client,
    config_option,
    fail,
    handle_errors,
    json_option,
    print_json,
    print_table,
)


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


def _change(
    op: str,
    done_key: str,
    pattern: str | None,
    config_path: str | None,
    as_json: bool,
    yes: bool,
    **options: Any,
) -> None:
    """Expand ``pattern`` on the master, confirm when it names more than one key, then act on
    exactly the keys shown (a key arriving meanwhile is not swept in)."""
    control = client(config_path)
    matched = control.call(op, match=pattern, dry_run=True, **options)["matched"]
    if not matched:
        fail(f"no key matches {pattern!r}" if pattern else "no pending keys")
    if len(matched) > 1 and not yes:
        if as_json or not sys.stdin.isatty():
            fail(
                f"{pattern!r} matches {len(matched)} keys ({', '.join(matched[:10])}): give -y to confirm", 2
            )
        click.echo(f"{pattern!r} matches {len(matched)} keys:")
        for minion_id in matched:
            click.echo(f"  {minion_id}")
        click.confirm(f"{op.split('.')[1]} all {len(matched)}?", abort=True)
    result = control.call(op, ids=matched)
    if as_json:
        print_json(result)
        return
    if result[done_key]:
        click.echo(f"{done_key}: " + ", ".join(result[done_key]))
    missed = [m for m in matched if m not in result[done_key]]
    if missed:
        click.echo(f"unchanged (changed by someone else meanwhile): {', '.join(missed)}", err=True)
        sys.exit(1)


_YES = click.option("-y", "--yes", is_flag=True, help="do not ask when the glob matches several keys")


@key.command("accept")
@click.argument("match", metavar="[ID_OR_GLOB]", required=False)
@click.option("--all", "accept_all", is_flag=True, help="accept every pending key")
@click.option("--include-rejected", is_flag=True, help="a glob also matches rejected keys")
@_YES
@config_option
@json_option
@handle_errors
def key_accept(
    match: str | None,
    accept_all: bool,
    include_rejected: bool,
    yes: bool,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Accept pending keys: one id, a glob ('web*': pending keys), or --all.

    An exact id may also be a rejected key. A glob matching more than one key asks
    for confirmation unless -y; what changed is listed.
    """
    if bool(match) == accept_all:
        raise click.UsageError("give an ID_OR_GLOB or --all")
    _change(
        "key.accept",
        "accepted",
        "*" if accept_all else match,
        config_path,
        as_json,
        yes or accept_all,
        include_rejected=include_rejected,
    )


@key.command("reject")
@click.argument("match", metavar="ID_OR_GLOB")
@click.option("--include-accepted", is_flag=True, help="a glob also matches accepted keys")
@_YES
@config_option
@json_option
@handle_errors
def key_reject(match: str, include_accepted: bool, yes: bool, config_path: str | None, as_json: bool) -> None:
    """Reject keys: one id (pending or accepted), or a glob (pending keys; with
    --include-accepted, accepted ones too). A connected minion is cut off at once."""
    _change("key.reject", "rejected", match, config_path, as_json, yes, include_accepted=include_accepted)


@key.command("delete")
@click.argument("match", metavar="ID_OR_GLOB")
@_YES
@config_option
@json_option
@handle_errors
def key_delete(match: str, yes: bool, config_path: str | None, as_json: bool) -> None:
    """Delete every key of one id, or of the ids a glob matches (in any state). A
    connected minion is cut off at once; it may ask to be accepted again."""
    _change("key.delete", "deleted", match, config_path, as_json, yes)


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
