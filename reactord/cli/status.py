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
    """Version, uptime, minions, keys, the action queue, the database and the master's counters.

    Also says when the database cannot be written (a full disk: events wait in the minions'
    outboxes) and which sources went over their budget (limits:).
    """
    info = client(config_path).call("status")
    if as_json:
        print_json(info)
        return
    click.echo(f"reactord {info['version']}, up {format_duration(info['uptime'])}")
    click.echo(f"master key: {info['master_finger']}")
    click.echo("minions:    " + ", ".join(f"{n} {state}" for state, n in info["minions"].items()))
    click.echo("keys:       " + ", ".join(f"{n} {state}" for state, n in info["keys"].items()))
    actions = info["actions"]
    click.echo(
        f"rules:      {info['rules_loaded']} loaded, {actions['running']} firings running, "
        f"{actions['queued']} queued{' (full: ingest waits)' if actions['saturated'] else ''}, "
        f"{info['dead_letters']} dead letters"
    )
    click.echo(
        f"events:     {info['events_logged']} in the log, {info['events_per_second']}/s over the last minute"
    )
    storage = info["storage"]
    state = "ok" if storage["ok"] else f"NOT WRITABLE: {storage['error']} (events are not acknowledged)"
    click.echo(f"database:   {info['database_bytes'] / 1e6:.1f} MB, {state}")
    if info["budget_refused"]:
        click.echo(
            "over budget: "
            + ", ".join(f"{source} {n} refused" for source, n in info["budget_refused"].items())
        )
    for name, value in info["counters"].items():
        click.echo(f"  {name:<28} {value}")


COMMANDS = [status]
