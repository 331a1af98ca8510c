"""``reactord event ...``: fire, send, watch, list, show and replay events."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from reactord.base import jsonable
from reactord.base.timespec import parse_time
from reactord.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SECONDS,
    client,
    config_option,
    fail,
    handle_errors,
    iso,
    json_option,
    load_config,
    print_json,
    print_json_list,
    print_rows,
    time_of_day,
    to_json,
)
from reactord.protocol.errors import TagError
from reactord.protocol.eventdata import parse_data
from reactord.protocol.tags import validate_pattern
from reactord.watcher import BusWatcher

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def event() -> None:
    """Fire, send, watch, list, show and replay events."""


def _data_options(func: F) -> F:
    func = click.option(
        "-d",
        "pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="a data field; the value is JSON if it parses (repeatable)",
    )(func)
    return click.option("--data", "data_json", metavar="JSON", help="the event data, a JSON object")(func)


@event.command("fire")
@click.argument("tag")
@_data_options
@config_option
@json_option
@handle_errors
def fire(
    tag: str, data_json: str | None, pairs: tuple[str, ...], config_path: str | None, as_json: bool
) -> None:
    """Fire an event as the master (source: cli) and print its id.

    \b
    Example:
      reactord event fire ops/deploy/start -d version=1.4.2 -d canary=true
    """
    try:
        data = parse_data(data_json, pairs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    result = client(config_path).call("event.fire", tag=tag, data=data)
    print_json(result) if as_json else click.echo(result["id"])


@event.command("send", context_settings={"ignore_unknown_options": True})
@click.argument("tag")
@_data_options
@click.option(
    "--count",
    type=click.IntRange(1, 1_000_000),
    default=1,
    show_default=True,
    help="send N events, identical but for an added field n (1..N)",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="minion.yaml (default: $REACTORD_CONFIG, ./minion.yaml, /etc/reactord/minion.yaml)",
)
@json_option
def send(
    tag: str,
    data_json: str | None,
    pairs: tuple[str, ...],
    count: int,
    config_path: str | None,
    as_json: bool,
) -> None:
    """On a minion's host: hand events to the running minion, which sends them as its own.

    They go to its durable outbox first (this returns once they are there), then over the
    encrypted bus, under minion/<id>/ (`event send app/deployed` on web01 becomes
    minion/web01/app/deployed). Runs `python -m minion send`.
    """
    # Read here, so that a mistake is told under this command's name, not the one it runs.
    try:
        data = parse_data(data_json, pairs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    argv = [sys.executable, "-m", "minion", "send", tag, "--count", str(count)]
    if data:
        argv += ["--data", json.dumps(data)]
    if config_path:
        argv += ["-c", config_path]
    if as_json:
        argv.append("--json")
    os.execv(sys.executable, argv)


def _print_event(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(
            to_json(
                {k: item[k] for k in ("id", "tag", "source", "time", "seq", "data")}
                | {k: item[k] for k in ("causation", "replayed") if k in item}
            )
        )
    else:
        stamp = time_of_day(item["time"])
        click.echo(f"{stamp}  {item['source']:<12} {item['tag']}  {jsonable.dumps(item['data'])}")


@event.command("watch")
@click.argument("pattern", required=False, default="**")
@click.option(
    "--count", type=click.IntRange(1), help="stop after N matching events (exit 1 if fewer by --timeout)"
)
@click.option("--timeout", type=SECONDS, help="stop after S seconds")
@config_option
@json_option
@handle_errors
def watch(
    pattern: str, count: int | None, timeout: float | None, config_path: str | None, as_json: bool
) -> None:
    """Live tail of the master's bus, optionally filtered by a tag glob PATTERN.

    PATTERN: `*` is one segment, `**` any depth (default: everything). With --json,
    one JSON object per line: id, tag, source, time, seq, data. A line on stderr says
    when the watch is live.
    """
    try:
        validate_pattern(pattern)
    except TagError as exc:
        fail(str(exc), EXIT_USAGE)
    config = load_config(config_path)
    watcher = BusWatcher(config.bus_path, client(config_path, timeout=10))
    seen = 0
    try:
        watcher.wait_live()
        click.echo(f"watching {pattern} on {config.bus_path}", err=True)
        for item in watcher.events(timeout, pattern):
            _print_event(item, as_json)
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
    if count is not None and seen < count:
        fail(f"saw {seen} of {count} events before the timeout", EXIT_FAILED)
    sys.exit(EXIT_OK)


def _time_option(name: str, help_text: str) -> Callable[[F], F]:
    return click.option(name, metavar="TIME", help=help_text + " (ISO 8601, 10m ago, epoch seconds)")


def _times(since: str | None, until: str | None) -> dict[str, float | None]:
    try:
        return {"since": parse_time(since) if since else None, "until": parse_time(until) if until else None}
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@event.command("list")
@click.option("--tag", metavar="GLOB", help="only tags matching this glob")
@click.option("--source", metavar="ID", help="only events from this source")
@_time_option("--since", "received at or after")
@_time_option("--until", "received before")
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True, help="0 for all")
@config_option
@json_option
@handle_errors
def list_events(
    tag: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    config_path: str | None,
    as_json: bool,
) -> None:
    """History from the event log: the most recent events (oldest of them first)."""
    events = client(config_path, timeout=300).stream(
        "event.list", tag=tag, source=source, limit=limit, **_times(since, until)
    )
    if as_json:
        print_json_list(events)
        return
    print_rows(
        ["received", "id", "source", "tag", "data"],
        (
            [iso(e["received"]), e["id"], e["source"], e["tag"], _short(jsonable.dumps(e["data"]))]
            for e in events
        ),
    )


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@event.command("show")
@click.argument("event_id")
@config_option
@json_option
@handle_errors
def show(event_id: str, config_path: str | None, as_json: bool) -> None:
    """One event from the log, and what it caused."""
    item = client(config_path).call("event.show", id=event_id)
    if as_json:
        print_json(item)
        return
    for key in ("id", "tag", "source", "seq", "epoch", "causation"):
        if item.get(key) not in (None, ""):
            click.echo(f"{key + ':':<11}{item[key]}")
    click.echo(f"{'time:':<11}{iso(item['time'])}  (received {iso(item['received'])})")
    click.echo("data:")
    click.echo("  " + jsonable.dumps(item["data"], indent=2).replace("\n", "\n  "))
    click.echo("what happened:")
    _print_chain(item, 1)


def _print_chain(item: dict[str, Any], level: int) -> None:
    """The reactor's decisions, actions, jobs and caused events under one event, as a tree."""
    pad = "  " * level
    jobs = {job["jid"]: job for job in item.get("jobs", [])}
    for decision in item.get("decisions", []):
        replay = decision.get("replay")
        where = f" (replay {replay})" if replay else ""
        if decision["fired"]:
            click.echo(f"{pad}rule {decision['rule']}: fired{where}")
        else:
            click.echo(f"{pad}rule {decision['rule']}: not fired{where} ({decision.get('reason')})")
        for action in item.get("actions", []):
            if action["rule"] != decision["rule"] or not decision["fired"] or action.get("replay") != replay:
                continue
            status = action["status"]
            line = f"{pad}  {action['label']}: {status}"
            if action.get("attempts", 0) > 1:
                line += f" after {action['attempts']} tries"
            if action.get("error"):
                line += f" ({action['error']})"
            click.echo(line)
            job = jobs.get(action.get("jid", ""))
            if job is not None:
                for minion, ret in job["returns"].items():
                    value = ret["return"] if ret["success"] else f"ERROR {ret.get('error')}"
                    click.echo(f"{pad}    job {job['jid']} on {minion}: {jsonable.dumps(value)}")
    for caused in item.get("caused", []):
        click.echo(f"{pad}-> {caused['tag']}  {caused['id']}")
        _print_chain(caused, level + 1)


@event.command("replay")
@click.option("--tag", metavar="GLOB", help="only tags matching this glob")
@click.option("--source", metavar="ID", help="only events from this source")
@_time_option("--since", "received at or after")
@_time_option("--until", "received before")
@click.option("--dry-run", is_flag=True, help="decide and show, but run no action")
@config_option
@json_option
@handle_errors
def replay(
    tag: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Feed stored events to the rules again, oldest first: reproduce what happened.

    Rule state starts fresh for the replay (throttles, windows, holds); each event's
    arrival time is the clock. Decisions are recorded as replayed; with --dry-run
    nothing is run or recorded.
    """
    stream = client(config_path, timeout=None).stream(
        "event.replay", tag=tag, source=source, dry_run=dry_run, **_times(since, until)
    )
    total = fired = 0
    with click.progressbar(length=1, label="replaying", file=sys.stderr) as bar:
        for item in stream:
            if "replay" in item:
                total = item["total"]
                bar.length = max(total, 1)
                continue
            bar.update(1)
            fired = item["fired"]
            if "event" in item:
                line = {
                    "id": item["event"]["id"],
                    "tag": item["event"]["tag"],
                    "rules": item["event"]["rules"],
                }
                click.echo(
                    to_json(line) if as_json else f"{line['id']} {line['tag']} -> {', '.join(line['rules'])}"
                )
    click.echo(f"replayed {total} events: {fired} rule firings{' (dry run)' if dry_run else ''}", err=True)


COMMANDS = [event]
