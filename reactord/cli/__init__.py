"""The ``reactord`` command: a thin click front over the daemons and the control socket."""

from __future__ import annotations

import click

from reactord import __version__
from reactord.cli import call, cluster, daemons, event_commands, fleet, jobs, keys, rules, status, tokens


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="reactord")
def cli() -> None:
    """reactord: event-driven infrastructure automation.

    Run a master and minions, accept their keys, run functions on them, watch,
    replay and explain the events they send, and gate deploys on the fleet's state.
    """


for command in (
    *daemons.COMMANDS,
    *keys.COMMANDS,
    *jobs.COMMANDS,
    *call.COMMANDS,
    *event_commands.COMMANDS,
    *rules.COMMANDS,
    *fleet.COMMANDS,
    *status.COMMANDS,
    *cluster.COMMANDS,
    *tokens.COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="reactord")
