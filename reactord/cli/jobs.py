"""``reactord run``, ``reactord jobs`` and ``reactord minions``: coordination and node awareness."""

from __future__ import annotations

import sys
from typing import Any

import click

from reactord.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    SECONDS,
    ago,
    config_option,
    fail,
    handle_errors,
    iso,
    json_option,
    load_config,
    print_json,
    print_table,
    to_json,
)
from reactord.cli.targets import check as check_target
from reactord.cli.targets import flagged_type, target_type_flags
from reactord.control import ControlClient
from reactord.protocol.calls import parse_call_args, return_lines


def _echo_return(minion_id: str, ret: dict[str, Any] | None) -> None:
    click.echo(f"{minion_id}:")
    for line in return_lines(ret):
        click.echo(f"    {line}")


def summary_line(summary: dict[str, Any]) -> str:
    parts = [f"{summary['succeeded']} succeeded"]
    for key, what in (("failed", "failed"), ("no_return", "did not return"), ("not_run", "not run")):
        if summary.get(key):
            parts.append(
                f"{len(summary[key])} {what} ({', '.join(summary[key][:10])}"
                + (", ..." if len(summary[key]) > 10 else "")
                + ")"
            )
    count = summary["minions"]
    line = f"{count} minion{'' if count == 1 else 's'}: " + ", ".join(parts)
    if summary.get("stopped_by"):
        line += f"; --failhard stopped the batch after {summary['stopped_by']} failed"
    return line


def _follow(
    control: ControlClient, request: dict[str, Any], batch: str | None, as_json: bool
) -> tuple[dict[str, Any], int]:
    """Run the job with its progress streamed: each return printed as it comes (and, for a
    batch, each start on stderr); the job's last item and how many minions it has."""
    done: dict[str, Any] = {}
    count = 0
    for item in control.stream("run", **request, progress=True):
        if item["type"] == "job":
            count = len(item["minions"])
            if batch is not None and not as_json:
                click.echo(f"job {item['jid']}: {count} minion(s), batch {batch}", err=True)
        elif item["type"] == "started" and batch is not None and not as_json:
            click.echo(f"  started {item['id']}", err=True)
        elif item["type"] == "return" and not as_json:
            _echo_return(item["id"], item["return"])
        elif item["type"] == "done":
            done = item
    return done, count


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("target")
@click.argument("function")
@click.argument("arguments", nargs=-1)
@target_type_flags
@click.option(
    "-t", "--timeout", type=SECONDS, help="seconds each minion has to return (default: job_timeout)"
)
@click.option("-b", "--batch", metavar="N|N%", help="run on N minions (or N% of them) at a time")
@click.option(
    "--batch-wait", type=SECONDS, help="with -b: seconds to wait after a return before the next minion"
)
@click.option("--failhard", is_flag=True, help="with -b: start no other minion after the first failure")
@click.option("--async", "run_async", is_flag=True, help="print the job id and return at once")
@config_option
@json_option
@handle_errors
def run(
    target: str,
    function: str,
    arguments: tuple[str, ...],
    timeout: float | None,
    batch: str | None,
    batch_wait: float | None,
    failhard: bool,
    run_async: bool,
    config_path: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Run FUNCTION on the minions TARGET names and print their returns as they come.

    TARGET is a glob on minion ids by default ('*', 'web*'); -E, -L, -G, -P, -C
    and -N say it is another kind (docs/cli.md#targets). ARGUMENTS are positional,
    or name=value for keywords. Exits 1 if any minion failed, did not return in
    time, or was not run.

    \b
    Examples:
      reactord run '*' test.ping
      reactord run -L web01,web02 test.echo hello
      reactord run -G os:Linux grains.get kernelrelease
      reactord run -C 'G@roles:web and not web09' service.restart nginx
      reactord run -N web-eu -b 25% --failhard service.restart nginx
      reactord run --async '*' test.sleep 30 -t 60
    """
    target_type = flagged_type(flags)
    check_target(target, target_type)
    if batch is None and (batch_wait is not None or failhard):
        raise click.UsageError("--batch-wait and --failhard go with -b/--batch")
    config = load_config(config_path)
    wait = timeout if timeout is not None else config.job_timeout
    args, kwargs = parse_call_args(arguments)
    request: dict[str, Any] = {
        "target": target,
        "target_type": target_type,
        "fun": function,
        "args": args,
        "kwargs": kwargs,
        "timeout": wait,
    }
    if batch is not None:
        request.update(batch=batch, batch_wait=batch_wait or 0.0, failhard=failhard)
    if run_async:
        started = ControlClient(config.control_path, timeout=30).call("run", **request, **{"async": True})
        if as_json:
            print_json(started)
        else:
            click.echo(f"job {started['jid']} started on {len(started['minions'])} minion(s)")
            click.echo(f"  reactord jobs show {started['jid']} --wait")
        return
    gap = wait + (batch_wait or 0.0) + 30  # the longest silence between two progress reports
    done, count = _follow(ControlClient(config.control_path, timeout=gap), request, batch, as_json)
    if not done:
        fail("the master ended the job's stream early")
    if as_json:
        print_json({"jid": done["jid"], "returns": done["returns"], "summary": done["summary"]})
    elif batch is not None or (count > 1 and done["summary"]["succeeded"] < count):
        click.echo(summary_line(done["summary"]), err=True)
    if not all(r["success"] for r in done["returns"].values()):
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
@click.option("--wait", is_flag=True, help="wait for the returns still missing (up to --timeout)")
@click.option(
    "-t", "--timeout", type=SECONDS, default=3600, show_default=True, help="with --wait: at most this long"
)
@config_option
@json_option
@click.pass_context
@handle_errors
def jobs_show(
    ctx: click.Context, jid: str, wait: bool, timeout: float, config_path: str | None, as_json: bool
) -> None:
    """Show one job, its returns, and its summary once it has ended.

    Exits 1 if a minion failed, did not return or was not run, or (without --wait)
    has not returned yet.
    """
    config_path = config_path or (ctx.obj or {}).get("config_path")
    as_json = as_json or bool((ctx.obj or {}).get("as_json"))
    control = ControlClient(load_config(config_path).control_path, timeout=(timeout if wait else 0) + 30)
    job = control.call("jobs.show", jid=jid, wait=timeout if wait else 0)
    ok = all(r is not None and r["success"] for r in job["returns"].values())
    if as_json:
        print_json(job)
        sys.exit(EXIT_OK if ok else EXIT_FAILED)
    click.echo(f"jid:      {job['jid']}")
    kwargs = to_json(job["kwargs"]) if job["kwargs"] else ""
    click.echo(f"function: {job['fun']} {to_json(job['args'])} {kwargs}".rstrip())
    click.echo(f"target:   {job['target']} ({job['target_type']})")
    batch = job.get("batch")
    if batch:
        size = f"{batch['size']}" if batch["size"] else f"{batch['percent']:g}%"
        extra = (f", wait {batch['wait']:g}s" if batch["wait"] else "") + (
            ", failhard" if batch["failhard"] else ""
        )
        click.echo(f"batch:    {size} at a time{extra}")
    click.echo(f"created:  {iso(job['created'])}  timeout {job['timeout']:g}s  origin {job['origin']}")
    for minion_id, ret in job["returns"].items():
        _echo_return(minion_id, ret)
    if job.get("summary"):
        click.echo(summary_line(job["summary"]))
    elif not job["finished"]:
        click.echo("still running" + ("" if wait else f": reactord jobs show {jid} --wait"))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@click.command()
@config_option
@json_option
@handle_errors
def minions(config_path: str | None, as_json: bool) -> None:
    """List accepted minions with their presence (up, suspect, down) and grains; in a
    cluster, also the master each is connected to."""
    listing = ControlClient(load_config(config_path).control_path).call("minions")
    if as_json:
        print_json(listing)
        return
    clustered = any("master" in m for m in listing)
    print_table(
        ["id", "presence", "last seen", *(["master"] if clustered else []), "os", "version"],
        [
            [
                m["id"],
                m["presence"],
                ago(m["last_seen"]),
                *([m.get("master", "")] if clustered else []),
                m["grains"].get("osfullname", ""),
                m["version"],
            ]
            for m in listing
        ],
    )


COMMANDS = [run, jobs, minions]
