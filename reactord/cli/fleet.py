"""``reactord state`` and ``reactord gate``: the fleet's current (or past) state, and a deploy gate."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from reactord.base import checks, jsonable
from reactord.base.timespec import parse_time
from reactord.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    client,
    config_option,
    fail,
    handle_errors,
    iso,
    json_option,
    print_json,
    print_table,
)
from reactord.cli.targets import target_value_options, valued_target


def parse_checks(words: tuple[str, ...]) -> list[dict[str, Any]]:
    """``reactord.base.checks.parse_checks``, its errors as click's."""
    try:
        return checks.parse_checks(words)
    except checks.CheckSyntax as exc:
        if exc.usage:
            raise click.UsageError(str(exc)) from None
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("tag_glob", required=False)
@click.option("--source", metavar="GLOB", help="only these sources (a glob on ids)")
@target_value_options
@click.option("--at", "at_text", metavar="TIME", help="the state as it was then, rebuilt from the event log")
@config_option
@json_option
@handle_errors
def state(
    tag_glob: str | None,
    source: str | None,
    at_text: str | None,
    config_path: str | None,
    as_json: bool,
    **targets: Any,
) -> None:
    """The fleet's state: the latest event of each source and tag, with its age.

    A row is stale when older than state.ttl or when its minion is down. With --at
    (ISO 8601, `10m` ago, or epoch seconds) the state is rebuilt from the log as it was then.
    """
    args: dict[str, Any] = {"tag": tag_glob, "source": source, **valued_target(targets)}
    if at_text:
        try:
            args["at"] = parse_time(at_text)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
    result = client(config_path).call("state.list", **args)
    if as_json:
        print_json(result)
        return
    if result["at"] is not None:
        click.echo(
            f"state at {iso(result['at'])}"
            + ("" if result["complete"] else " (incomplete: the log's retention has removed older events)")
        )
    print_table(
        ["source", "tag", "age", "presence", "stale", "data"],
        [
            [
                r["source"],
                r["tag"],
                f"{r['age']:.0f}s",
                r["presence"],
                "STALE" if r["stale"] else "",
                _short(jsonable.dumps(r["data"])),
            ]
            for r in result["rows"]
        ],
    )


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@click.command()
@click.argument("conditions", nargs=-1, required=True)
@target_value_options
@click.option("--wait", "wait", type=float, default=0, help="keep checking up to S seconds until it opens")
@click.option("--allow-stale", is_flag=True, help="let stale or missing state pass")
@config_option
@json_option
@handle_errors
def gate(
    conditions: tuple[str, ...],
    wait: float,
    allow_stale: bool,
    config_path: str | None,
    as_json: bool,
    **targets: Any,
) -> None:
    """Exit 0 when every targeted minion's current state satisfies CONDITIONS, 1 when not.

    CONDITIONS: a tag glob, then its conditions in the rules' language, short
    ('data.load1 < 2', 'data.ok == true', 'data.name in [a, b]', 'data.x exists')
    or as a mapping ('{data.load1: {lt: 2}}'). Several globs may follow each other.
    Stale or missing state fails unless --allow-stale. Exit 3: master not reachable.

    \b
    Example, in a deploy pipeline:
      reactord gate 'minion/*/beacon/load' 'data.load1 < 2' --target 'web*' --wait 300
      reactord gate 'minion/*/beacon/load' 'data.load1 < 2' -C 'G@roles:web and not web09'
    """
    checks = parse_checks(conditions)
    args = {"checks": checks, "allow_stale": allow_stale, **valued_target(targets)}
    control = client(config_path)
    deadline = time.monotonic() + wait
    while True:
        result = control.call("gate.check", **args)
        if result["open"] or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # --wait: check again until the deadline
    if as_json:
        print_json(result)
    else:
        minions = result["minions"]
        passed = sum(1 for r in minions.values() if r["ok"])
        click.echo(f"gate {'open' if result['open'] else 'closed'}: {passed} of {len(minions)} minions pass")
        for minion_id, r in minions.items():
            for reason in r["reasons"]:
                click.echo(f"  {minion_id}: {reason}")
    sys.exit(EXIT_OK if result["open"] else EXIT_FAILED)


COMMANDS = [state, gate]
