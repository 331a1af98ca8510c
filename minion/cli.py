"""The minion's own small command line (``python -m minion``)."""

from __future__ import annotations

import asyncio
import sys

import click

from minion.agent import Agent
from minion.config import MinionConfig, load_minion_config
from minion.errors import MasterKeyError
from reactord.protocol.errors import ConfigError, KeyFileError
from reactord.protocol.logsetup import LEVELS, setup_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="minion.yaml (default: $REACTORD_CONFIG, ./minion.yaml, /etc/reactord/minion.yaml)",
)
@click.option("-l", "--log-level", type=click.Choice(LEVELS), help="override log_level")
def main(config_path: str | None, log_level: str | None) -> None:
    """Run the reactord minion in the foreground until SIGTERM or SIGINT."""
    try:
        config = load_minion_config(config_path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    setup_logging(log_level or config.log_level, fmt=config.log_format, log_file=config.log_file)
    try:
        asyncio.run(_run(config))
    except (KeyFileError, MasterKeyError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


async def _run(config: MinionConfig) -> None:
    agent = Agent(config)
    agent.install_signals()
    await agent.run()
