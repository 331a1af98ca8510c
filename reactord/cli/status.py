"""``reactord status``: how the running master is doing."""

from __future__ import annotations

import click

from reactord.cli.common import client, config_option, handle_errors, json_option, print_json
from reactord.protocol.durations import format_duration


@click.command()
@config_option
@json_option
@handle_errors
def status(config_path: str | None, as_json: bool) -> None:
    """Version, uptime, minions by presence, keys by state and the master's counters."""
    info = client(config_path).call("status")
    if as_json:
        print_json(info)
        return
    click.echo(f"reactord {info['version']}, up {format_duration(info['uptime'])}")
    click.echo(f"master key: {info['master_finger']}")
    click.echo("minions:    " + ", ".join(f"{n} {state}" for state, n in info["minions"].items()))
    click.echo("keys:       " + ", ".join(f"{n} {state}" for state, n in info["keys"].items()))
    click.echo(
        f"rules:      {info['rules_loaded']} loaded, {info['actions_in_flight']} actions in flight, "
        f"{info['dead_letters']} dead letters"
    )
    click.echo(
        f"events:     {info['events_logged']} in the log, {info['events_per_second']}/s over the last minute"
    )
    click.echo(f"database:   {info['database_bytes'] / 1e6:.1f} MB")
    for name, value in info["counters"].items():
        click.echo(f"  {name:<28} {value}")


COMMANDS = [status]
