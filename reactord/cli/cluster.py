"""``reactord cluster``: a cluster of masters (docs/cluster.md)."""

from __future__ import annotations

from typing import Any

import click

from reactord.cli.common import client, config_option, handle_errors, json_option, print_json


@click.group()
def cluster() -> None:
    """Masters sharing one fleet through NATS JetStream (cluster: in master.yaml)."""


@cluster.command("status")
@config_option
@json_option
@handle_errors
def cluster_status(config_path: str | None, as_json: bool) -> None:
    """Members, which partitions each owns, this master's lag behind the event stream, and the
    engine's version and health (stream leader, replicas current or lagging).

    Exits 1 on a master that is not in a cluster."""
    info = client(config_path).call("cluster.status")
    if as_json:
        print_json(info)
        return
    engine = info["engine"]
    state = "connected" if engine["connected"] else "DISCONNECTED (reconnecting)"
    click.echo(f"member:     {info['member']}")
    click.echo(f"engine:     nats-server {engine['version']} at {engine['address']}, {state}")
    click.echo(f"applied:    #{info['applied']}, {info.get('lag', '?')} behind the stream")
    click.echo(f"partitions: {info['partitions']}, {len(info['unowned'])} without an owner")
    for member, owned in sorted(info["owners"].items()):
        click.echo(f"  {member:<24} {len(owned):>4} partitions  {_ranges(owned)}")
    for stream in info.get("streams", []):
        click.echo(_stream_line(stream))
    if "error" in info:
        click.echo(f"error:      {info['error']}")


@cluster.command("import")
@click.option(
    "--from",
    "source_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="the single master's master.yaml (its pki_dir and database are read)",
)
@click.option(
    "--since",
    default="1d",
    show_default=True,
    help="events received this long ago or later are copied (besides the fleet state's)",
)
@config_option
@json_option
@handle_errors
def cluster_import(source_path: str, since: str, config_path: str | None, as_json: bool) -> None:
    """Copy a single master's state into a fresh cluster: minion keys (all states), the fleet
    state and recent events (logged on every master, not decided again), and the rule state
    (throttles, windows, holds).

    -c names a master.yaml with the cluster: section; the import talks to the engine
    directly. Run it before any master of the cluster has started (a started master logs its
    start in the stream) and after the single master has stopped. Refused (exit 1) when the
    cluster's event stream already holds records."""
    import asyncio
    import time

    from reactord.base.config import load_master_config, read_secret
    from reactord.cluster.importer import import_single
    from reactord.protocol.durations import parse_duration

    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    target = load_master_config(config_path)
    if not target.cluster.enabled:
        raise click.UsageError(f"{target.path} has no cluster: servers: to import into")
    source = load_master_config(source_path)
    settings = target.cluster
    token = (
        read_secret(settings.token, settings.token_file, "token")
        if settings.token or settings.token_file
        else None
    )
    done = asyncio.run(import_single(source, target, time.time() - window, token))
    if as_json:
        print_json(done.public())
        return
    click.echo(
        f"imported {done.keys} minion keys, {done.events} events and {done.rule_rows} rule state rows"
        f" from {source.database}"
    )


def _stream_line(stream: dict[str, Any]) -> str:
    if not stream.get("exists"):
        return f"stream {stream['stream']}: missing"
    replicas = ", ".join(
        f"{r['name']} {'offline' if r['offline'] else 'current' if r['current'] else 'lag ' + str(r['lag'])}"
        for r in stream["replicas"]
    )
    return f"stream {stream['stream']}: {stream['messages']} messages, leader {stream['leader']}" + (
        f", replicas {replicas}" if replicas else ""
    )


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2 5"."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and "-" not in out[-1].split(" ")[-1] and int(out[-1]) == n - 1:
            out[-1] = f"{out[-1]}-{n}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == n - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return " ".join(out)


COMMANDS = [cluster]
