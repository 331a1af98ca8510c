"""The minion's own small command line (``python -m minion``).

``python -m minion [-c FILE]`` runs the daemon (``reactord minion`` runs exactly this);
``python -m minion send TAG`` and ``status`` talk to a running minion on this host
(``reactord event send`` runs the former); ``python -m minion functions`` lists the
functions the minion code installed here provides (``reactord rules check`` asks it, as
reactord never imports minion).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from minion.config import MinionConfig, load_minion_config
from minion.errors import MasterKeyError
from minion.plugins import PluginError, load_registry
from reactord.protocol.calls import parse_call_args, return_lines
from reactord.protocol.errors import (
    ConfigError,
    KeyFileError,
    RequestError,
    StorageDamaged,
    StorageFull,
    Unreachable,
)
from reactord.protocol.eventdata import parse_data
from reactord.protocol.localsock import LocalClient
from reactord.protocol.logsetup import LEVELS, reopen_log, setup_logging

CONFIG_HELP = "minion.yaml (default: $REACTORD_CONFIG, ./minion.yaml, /etc/reactord/minion.yaml)"


def _config(path: str | None) -> MinionConfig:
    try:
        return load_minion_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _client(path: str | None, timeout: float = 60.0) -> LocalClient:
    return LocalClient(_config(path).local_socket, timeout, daemon="minion")


def _call(client: LocalClient, op: str, **args: Any) -> Any:
    try:
        return client.call(op, **args)
    except Unreachable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except RequestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2 if exc.code == "bad_request" else 1)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", metavar="FILE", help=CONFIG_HELP)
@click.option("-l", "--log-level", type=click.Choice(LEVELS), help="override log_level")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """Run the reactord minion in the foreground until SIGTERM or SIGINT.

    Exits 2, with one line naming the file, for a bad config, key or plugin, and for a
    damaged outbox.db or minion.db (at start, before connecting anywhere, or later).
    """
    if ctx.invoked_subcommand is not None:
        return
    config = _config(config_path)
    handler = setup_logging(log_level or config.log_level, fmt=config.log_format, log_file=config.log_file)
    try:
        asyncio.run(_run(config, lambda: reopen_log(handler)))
    except (KeyFileError, MasterKeyError, ConfigError, PluginError, StorageDamaged) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StorageFull as exc:  # its state files cannot even be created or opened
        click.echo(f"error: {exc}: free space on its filesystem, then start the minion again", err=True)
        sys.exit(1)


async def _run(config: MinionConfig, reopen: Callable[[], None]) -> None:
    from minion.agent import Agent

    agent = Agent(config)
    agent.install_signals(reopen)
    await agent.run()


@main.command()
@click.argument("tag")
@click.option("--data", "data_json", metavar="JSON", help="the event data, a JSON object")
@click.option("-d", "pairs", multiple=True, metavar="KEY=VALUE", help="a data field (repeatable)")
@click.option("--count", type=click.IntRange(1, 1_000_000), default=1, help="send N events (adds a field n)")
@click.option("-c", "--config", "config_path", metavar="FILE", help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def send(
    tag: str,
    data_json: str | None,
    pairs: tuple[str, ...],
    count: int,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Hand events to the running minion on this host; returns once they are durable."""
    try:
        data = parse_data(data_json, pairs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    result = _call(_client(config_path), "event.send", tag=tag, data=data, count=count)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"queued {result['count']} event(s), seq {result['first_seq']}..{result['last_seq']}")


@main.command()
@click.option("-c", "--config", "config_path", metavar="FILE", help=CONFIG_HELP)
def status(config_path: str | None) -> None:
    """How the running minion on this host is doing (JSON)."""
    click.echo(json.dumps(_call(_client(config_path, 10.0), "status"), indent=2))


@main.command()
@click.option("-c", "--config", "config_path", metavar="FILE", help="also this minion.yaml's plugins.dirs")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output: {name: origin}")
def functions(config_path: str | None, as_json: bool) -> None:
    """The functions the minion code on this host provides, allowed or not: built-ins and
    installed plugins (entry points), and with -c the plugins.dirs of that minion.yaml."""
    dirs: tuple[Path, ...] = ()
    use_entry_points = True
    if config_path:
        config = _config(config_path)
        dirs, use_entry_points = config.plugins.dirs, config.plugins.entry_points
    try:
        registry = load_registry(dirs, use_entry_points=use_entry_points)
    except PluginError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    origins = {name: registry.origin[("function", name)] for name in sorted(registry.functions)}
    if as_json:
        click.echo(json.dumps(origins))
    else:
        for name, origin in origins.items():
            click.echo(f"{name}  {origin}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("function")
@click.argument("arguments", nargs=-1)
@click.option("-t", "--timeout", type=click.FloatRange(0, 7 * 86400, min_open=True), default=30.0)
@click.option("-c", "--config", "config_path", metavar="FILE", help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def call(
    function: str, arguments: tuple[str, ...], timeout: float, config_path: str | None, as_json: bool
) -> None:
    """Run FUNCTION through the running minion on this host and print its return
    (``reactord call`` runs this): the same functions.allow as jobs from the master."""
    args, kwargs = parse_call_args(arguments)
    client = _client(config_path, timeout + 10)
    ret = _call(client, "call", fun=function, args=args, kwargs=kwargs, timeout=timeout)
    if as_json:
        click.echo(json.dumps(ret, default=str))
    else:
        click.echo(f"{ret['id']}:")
        for line in return_lines(ret):
            click.echo(f"    {line}")
    sys.exit(0 if ret["success"] else 1)
