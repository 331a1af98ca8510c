"""``reactord init``, ``master``, ``minion`` and ``demo``: set up and run the daemons."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import click
import zmq

from reactord.base.config import DEFAULT_COMMAND_PORT, DEFAULT_EVENT_PORT, DEFAULT_HTTP_PORT, DEFAULT_KEY_PORT
from reactord.cli.common import EXIT_USAGE, config_option, fail, load_config
from reactord.protocol.errors import KeyFileError, ReactordError, TagError
from reactord.protocol.logsetup import LEVELS, reopen_log, setup_logging


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--minion-id",
    default=lambda: socket.gethostname().split(".")[0],
    show_default="hostname",
    help="id of the local minion",
)
@click.option("--event-port", type=click.IntRange(1, 65535), default=DEFAULT_EVENT_PORT, show_default=True)
@click.option(
    "--command-port", type=click.IntRange(1, 65535), default=DEFAULT_COMMAND_PORT, show_default=True
)
@click.option("--key-port", type=click.IntRange(1, 65535), default=DEFAULT_KEY_PORT, show_default=True)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_HTTP_PORT,
    show_default=True,
    help="the API and dashboard on 127.0.0.1, with an admin token in DIRECTORY/admin.token (0: off)",
)
@click.option("--accept-local", is_flag=True, help="pre-accept the local minion's key (demo setups only)")
@click.option("--force", is_flag=True, help="overwrite existing config files")
def init(
    directory: Path,
    minion_id: str,
    event_port: int,
    command_port: int,
    key_port: int,
    http_port: int,
    accept_local: bool,
    force: bool,
) -> None:
    """Write a ready local setup in DIRECTORY: master.yaml, minion.yaml, reactor.d/.

    Then start it with `reactord master -c DIRECTORY/master.yaml` and
    `reactord minion -c DIRECTORY/minion.yaml`, and accept the minion's key.
    """
    from reactord.scaffold import init_setup

    ports = [event_port, command_port, key_port] + ([http_port] if http_port else [])
    if len(set(ports)) != len(ports):
        fail("--event-port, --command-port, --key-port and --http-port must differ", EXIT_USAGE)
    try:
        result = init_setup(
            directory,
            minion_id=minion_id,
            event_port=event_port,
            command_port=command_port,
            key_port=key_port,
            accept_local=accept_local,
            force=force,
            http_port=http_port or None,
        )
    except (FileExistsError, TagError, KeyFileError) as exc:
        fail(str(exc), EXIT_USAGE)
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo(f"master key fingerprint: {result.master_finger}")
    if result.http_url:
        click.echo(f"dashboard: {result.http_url} (log in with the admin token in {result.token_file})")
    if not accept_local:
        click.echo(
            f"next: reactord master -c {directory}/master.yaml, reactord minion -c "
            f"{directory}/minion.yaml, then reactord key accept {minion_id} -c {directory}/master.yaml"
        )


@click.command()
@config_option
@click.option("-l", "--log-level", type=click.Choice(LEVELS), help="override log_level")
def master(config_path: str | None, log_level: str | None) -> None:
    """Run the master in the foreground until SIGTERM or SIGINT (SIGHUP reloads)."""
    config = load_config(config_path)
    handler = setup_logging(log_level or config.log_level, fmt=config.log_format, log_file=config.log_file)

    async def serve() -> None:
        from reactord.master import Master

        daemon = Master(config)
        daemon.install_signals(lambda: reopen_log(handler))
        await daemon.run()

    try:
        asyncio.run(serve())
    except ReactordError as exc:
        fail(str(exc), EXIT_USAGE)
    except (OSError, zmq.ZMQError) as exc:
        fail(f"cannot start the master: {exc} (is another master running on these ports?)", 1)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="minion.yaml (default: $REACTORD_CONFIG, ./minion.yaml, /etc/reactord/minion.yaml)",
)
@click.option("-l", "--log-level", type=click.Choice(LEVELS), help="override log_level")
def minion(config_path: str | None, log_level: str | None) -> None:
    """Run the minion in the foreground until SIGTERM or SIGINT (same as `python -m minion`)."""
    argv = [sys.executable, "-m", "minion"]
    if config_path:
        argv += ["-c", config_path]
    if log_level:
        argv += ["-l", log_level]
    os.execv(sys.executable, argv)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default="demo")
@click.option(
    "--base-port",
    type=click.IntRange(1, 65532),
    default=DEFAULT_EVENT_PORT,
    show_default=True,
    help="event port of a new setup; the command, key and HTTP ports follow it",
)
def demo(directory: Path, base_port: int) -> None:
    """Start a master and a local minion from DIRECTORY and show what happens (`make run`).

    Writes the setup with `reactord init --accept-local` when DIRECTORY has none.
    Ctrl-C stops both.
    """
    from reactord.demo import run_demo

    sys.exit(run_demo(directory, base_port))


COMMANDS = [init, master, minion, demo]
