"""``reactord call``: a function through the local minion, like ``salt-call``."""

from __future__ import annotations

import os
import sys

import click

from reactord.cli.common import SECONDS, json_option


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("function")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.option("-t", "--timeout", type=SECONDS, default=30.0, show_default=True, help="seconds it may run")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="minion.yaml (default: $REACTORD_CONFIG, ./minion.yaml, /etc/reactord/minion.yaml)",
)
@json_option
def call(
    function: str, arguments: tuple[str, ...], timeout: float, config_path: str | None, as_json: bool
) -> None:
    """On a minion's host: run FUNCTION through the running minion and print its return.

    The minion runs it as it runs a job from the master, under the same functions.allow
    and timeouts; the return is printed here and not sent to the master. ARGUMENTS are
    positional, or name=value for keywords. Exits 1 if the function failed, 3 if no
    minion runs here. Runs `python -m minion call`.

    \b
    Examples:
      reactord call test.ping
      reactord call grains.get os
      reactord call beacons.test load     # one poll of a beacon: the events it would send
    """
    argv = [sys.executable, "-m", "minion", "call", "--timeout", str(timeout)]
    if config_path:
        argv += ["-c", config_path]
    if as_json:
        argv.append("--json")
    os.execv(sys.executable, [*argv, "--", function, *arguments])


COMMANDS = [call]
