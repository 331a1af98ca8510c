"""``reactord run``, ``reactord jobs`` and ``reactord minions``: coordination and node awareness."""

from __future__ import annotations

import datetime
import re
import sys
from typing import Any

import click
import yaml

from reactord.cli.common import (
    EXIT_FAILED,
    SECONDS,
    ago,
    config_option,
    handle_errors,
    iso,
    json_option,
    load_config,
    print_json,
    print_table,
)
from reactord.control import ControlClient

_KWARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)


def parse_call_args(raw: tuple[str, ...]) -> tuple[list[Any], dict[str, Any]]:
    """CLI words into args and kwargs: ``name=value`` is a keyword; values are YAML scalars."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for word in raw:
        match = _KWARG.fullmatch(word)
        if match:
            kwargs[match.group(1)] = _value(match.group(2))
        else:
            args.append(_value(word))
    return args, kwargs


def _value(text: str) -> Any:
    """A YAML scalar (3, true, [a, b]); text that YAML would turn into a date stays text."""
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    return text if isinstance(value, (datetime.date, datetime.datetime)) else value


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("target")
@click.argument("function")
@click.argument("arguments", nargs=-1)
@click.option("-L", "--list", "as_list", is_flag=True, help="TARGET is a comma-separated list of ids")
@click.option("-G", "--grain", "as_grain", is_flag=True, help="TARGET is a grain match, key:value")
@click.option("--timeout", type=SECONDS, help="seconds to wait for returns (default: job_timeout)")
@config_option
@json_option
@handle_errors
def run(
    target: str,
    function: str,
    arguments: tuple[str, ...],
    as_list: bool,
    as_grain: bool,
    timeout: float | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Run FUNCTION on the minions TARGET names and print their returns.

    TARGET is a glob on minion ids by default ('*', 'web*'); ARGUMENTS are
    positional, or name=value for keywords. Exits 1 if any minion failed
    or did not answer in time.

    \b
    Examples:
      reactord run '*' test.ping
      reactord run -L web01,web02 test.echo hello
      reactord run -G os:Linux grains.get kernelrelease
    """
    if as_list and as_grain:
        raise click.UsageError("-L and -G cannot be combined")
    config = load_config(config_path)
    wait = timeout if timeout is not None else config.job_timeout
    args, kwargs = parse_call_args(arguments)
    result = ControlClient(config.control_path, timeout=wait + 30).call(
        "run",
        target=target,
        target_type="list" if as_list else "grain" if as_grain else "glob",
        fun=function,
        args=args,
        kwargs=kwargs,
        timeout=wait,
    )
    returns = result["returns"]
    if as_json:
        print_json({"jid": result["jid"], "returns": returns})
    else:
        for minion_id, ret in returns.items():
            click.echo(f"{minion_id}:")
            if ret["success"]:
                text = yaml.safe_dump(ret["return"], default_flow_style=False, sort_keys=True)
                for line in text.rstrip("\n").removesuffix("\n...").splitlines():
                    click.echo(f"    {line}")
            else:
                reason = ret.get("error") or f"failed (retcode {ret.get('retcode')})"
                click.echo(f"    ERROR: {reason}")
                if ret.get("return") is not None:
                    text = yaml.safe_dump(ret["return"], default_flow_style=False, sort_keys=True)
                    for line in text.rstrip("\n").removesuffix("\n...").splitlines():
                        click.echo(f"    {line}")
    if not all(r["success"] for r in returns.values()):
        sys.exit(EXIT_FAILED)


@click.group(invoke_without_command=True)
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="how many recent jobs"
)
@config_option
@json_option
@click.pass_context
@handle_errors
def jobs(ctx: click.Context, limit: int, config_path: str | None, as_json: bool) -> None:
    """List recent jobs (newest first); `jobs show JID` for one job's returns."""
    ctx.obj = {"config_path": config_path, "as_json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    listing = ControlClient(load_config(config_path).control_path).call("jobs.list", limit=limit)
    if as_json:
        print_json(listing)
        return
    print_table(
        ["jid", "function", "target", "minions", "returned", "created"],
        [
            [j["jid"], j["fun"], j["target"], len(j["minions"]), j["returned"], iso(j["created"])]
            for j in listing
        ],
    )


@jobs.command("show")
@click.argument("jid")
@config_option
@json_option
@click.pass_context
@handle_errors
def jobs_show(ctx: click.Context, jid: str, config_path: str | None, as_json: bool) -> None:
    """Show one job and the returns stored for it."""
    config_path = config_path or (ctx.obj or {}).get("config_path")
    as_json = as_json or bool((ctx.obj or {}).get("as_json"))
    job = ControlClient(load_config(config_path).control_path).call("jobs.show", jid=jid)
    if as_json:
        print_json(job)
        return
    click.echo(f"jid:      {job['jid']}")
    click.echo(f"function: {job['fun']} {job['args']} {job['kwargs'] or ''}".rstrip())
    click.echo(f"target:   {job['target']} ({job['target_type']})")
    click.echo(f"created:  {iso(job['created'])}  timeout {job['timeout']:g}s  origin {job['origin']}")
    for minion_id, ret in job["returns"].items():
        if ret is None:
            click.echo(f"  {minion_id}: (no return)")
        elif ret["success"]:
            click.echo(f"  {minion_id}: {ret['return']!r}")
        else:
            detail = ret.get("error") or f"failed (retcode {ret.get('retcode')}): {ret.get('return')!r}"
            click.echo(f"  {minion_id}: ERROR {detail}")


@click.command()
@config_option
@json_option
@handle_errors
def minions(config_path: str | None, as_json: bool) -> None:
    """List accepted minions with their presence (up, suspect, down) and grains."""
    listing = ControlClient(load_config(config_path).control_path).call("minions")
    if as_json:
        print_json(listing)
        return
    print_table(
        ["id", "presence", "last seen", "os", "version"],
        [
            [m["id"], m["presence"], ago(m["last_seen"]), m["grains"].get("osfullname", ""), m["version"]]
            for m in listing
        ],
    )


COMMANDS = [run, jobs, minions]
