"""``reactord rules ...`` and ``reactord deadletters ...``: the reactor, visible and testable."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from reactord.actions.kinds import KINDS
from reactord.actions.kinds.run import RunParams
from reactord.base import jsonable
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
    load_config,
    print_json,
    print_table,
)
from reactord.reactor.offline import EventFileError, load_offline, read_events, run_offline
from reactord.reactor.rules import RuleError, RuleSet, rule_files
from reactord.rulefiles import check_rule_files


@click.group()
def rules() -> None:
    """Check, test, list, reload and explain rules."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@config_option
@json_option
def check(path: Path | None, config_path: str | None, as_json: bool) -> None:
    """Validate rules: PATH (a file or a folder), or the master's `rules` globs. Exit 0 or 2.

    Targets naming nodegroups are checked against master.yaml's when it is read (no PATH,
    or -c); a PATH alone checks their syntax only.
    """
    nodegroups = None
    if path is not None:
        files = (
            [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        )
    if path is None or config_path:
        config = load_config(config_path)
        nodegroups = config.nodegroups
        if path is None:
            files = rule_files(config.rules, config.path.parent)
    loaded, verdict = check_rule_files(files, nodegroups, KINDS)
    if loaded is None:
        if as_json:
            click.echo(json.dumps(verdict))
            sys.exit(EXIT_USAGE)
        fail(verdict["error"], EXIT_USAGE)
    warnings = _unknown_functions(loaded)
    if as_json:
        click.echo(json.dumps({**verdict, "warnings": warnings}))
    else:
        for warning in warnings:
            click.echo(f"warning: {warning['message']}", err=True)
        click.echo(f"ok: {len(loaded.rules)} rules in {len(loaded.files)} files")


def _unknown_functions(loaded: RuleSet) -> list[dict[str, Any]]:
    """A warning for each ``run`` of a function that no built-in module or installed plugin
    provides (a warning only: the minions may have plugins this host has not)."""
    calls = [
        (rule, spec, spec.params.fun)
        for rule in loaded.rules
        for spec in rule.do
        if isinstance(spec.params, RunParams)
    ]
    if not calls:
        return []
    known, why = _minion_functions()
    if known is None:
        return [{"message": f"the function names of run actions were not checked: {why}"}]
    warnings = []
    for rule, spec, fun in calls:
        if fun in known:
            continue
        close = difflib.get_close_matches(fun, known, n=1)
        message = (
            f"{rule.file}:{spec.line}: rule {rule.name}: run {fun}: no built-in minion module"
            " or plugin installed here provides it"
            + (f" (did you mean {close[0]}?)" if close else "")
            + "; a minion with a plugin of its own may"
        )
        warnings.append(
            {
                "file": rule.file,
                "line": spec.line,
                "rule": rule.name,
                "function": fun,
                "did_you_mean": close[0] if close else None,
                "message": message,
            }
        )
    return warnings


def _minion_functions() -> tuple[list[str] | None, str]:
    """The functions the minion code installed here provides, asked of ``python -m minion
    functions`` (reactord never imports minion); None and why when that fails."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "minion", "functions", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if listed.returncode != 0:
        return None, (listed.stderr.strip().splitlines() or [f"exit {listed.returncode}"])[-1]
    try:
        return sorted(json.loads(listed.stdout)), ""
    except (json.JSONDecodeError, TypeError) as exc:
        return None, f"unreadable list of functions: {exc}"


@rules.command("test")
@click.argument("rules_path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--event",
    "event_file",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="a JSON file: one event, or a list of events (a sequence)",
)
@json_option
def test(rules_path: Path, event_file: Path, as_json: bool) -> None:
    """Run events through rules offline (no master) and show what would fire.

    The actions fired rules would take are shown rendered, never run. For a sequence,
    each event's `time` is the clock: changed, for, throttle and threshold apply across it.
    A `for` hold or an absence that comes due between two events fires at the time it came
    due; an item {"clock": T} moves the clock to T without an event. Fleet rules count the
    events' sources as the fleet. Exit 0 if at least one rule fires, 1 if none, 2 if the
    rules or events are invalid.
    """
    try:
        rule_set = load_offline(rules_path, KINDS)
        events = read_events(event_file)
    except (RuleError, EventFileError) as exc:
        fail(str(exc), EXIT_USAGE)
    steps = run_offline(rule_set, events)
    fired = any(d.fired for step in steps for d in step.decisions)
    if as_json:
        click.echo(jsonable.dumps({"fired": fired, "steps": [s.public() for s in steps]}, indent=2))
    else:
        for step in steps:
            when = iso(step.time)
            if step.due == "for":  # a `for` fires when it comes due, on the latest event that held
                when += f", for came due; its event at {iso(step.event.time)}"
            elif step.due == "absence":  # an absence fires at its deadline, on its first event
                when += f", nothing came by then; waiting since {iso(step.event.time)}"
            click.echo(f"{step.event.tag} ({step.event.source}, {when})")
            if not step.decisions:
                click.echo("  no rule listens to this tag")
            for decision in step.decisions:
                mark = "FIRES" if decision.fired else "no   "
                click.echo(
                    f"  {mark} {decision.rule.name}" + ("" if decision.fired else f": {decision.reason}")
                )
            for action in step.actions:
                detail = action.get("error") or jsonable.dumps(action["params"])
                click.echo(f"        -> {action['kind']}: {detail}")
    sys.exit(EXIT_OK if fired else EXIT_FAILED)


@rules.command("list")
@config_option
@json_option
@handle_errors
def list_rules(config_path: str | None, as_json: bool) -> None:
    """The rules the running master has loaded, with how often each fired."""
    listing = client(config_path).call("rules.list")
    if as_json:
        print_json(listing)
        return
    print_table(
        ["name", "on", "fired", "keys", "actions", "where"],
        [
            [
                r["name"],
                ", ".join(r["on"]),
                r["fired"],
                _keys(r.get("state")) if r.get("kind") != "fleet" else "fleet",
                "; ".join(r["actions"]),
                f"{r['file']}:{r['line']}",
            ]
            for r in listing
        ],
    )


def _keys(state: dict[str, Any] | None) -> str:
    """A correlation's, sequence's or absence's keys: held, of the limit, and dropped."""
    if not state:
        return "-"
    text = f"{state['keys']}/{state['max_keys']}"
    return f"{text} ({state['dropped']} dropped)" if state["dropped"] else text


@rules.command("reload")
@config_option
@handle_errors
def reload(config_path: str | None) -> None:
    """Reload the rule files now (atomic: a bad file keeps the running set and says why)."""
    click.echo(client(config_path).call("rules.reload")["reloaded"])


@rules.command("explain")
@click.argument("event_id", required=False)
@click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, path_type=Path),
    help="explain this JSON event instead of a stored one",
)
@config_option
@json_option
@handle_errors
def explain(event_id: str | None, event_file: Path | None, config_path: str | None, as_json: bool) -> None:
    """For every rule whose tag glob matches the event: did it fire, and if not, why.

    For a stored event (EVENT_ID) this shows what was decided when it arrived, and what
    the rules loaded now would decide. Nothing is run and no state changes.
    """
    if bool(event_id) == bool(event_file):
        raise click.UsageError("give an EVENT_ID or --event FILE")
    args: dict[str, Any] = {"id": event_id}
    if event_file is not None:
        try:
            args = {"event": json.loads(event_file.read_text())}
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"{event_file}: {exc}", EXIT_USAGE)
    result = client(config_path).call("rules.explain", **args)
    if as_json:
        print_json(result)
        return
    event = result["event"]
    click.echo(f"event {event['id']}: {event['tag']} from {event['source']}")
    if result["recorded"] is not None:
        click.echo("decided when it arrived:")
        _decisions(result["recorded"])
    click.echo("the rules loaded now would decide:")
    _decisions(result["now"])


def _decisions(decisions: list[dict[str, Any]]) -> None:
    if not decisions:
        click.echo("  no rule listens to this tag")
    for d in decisions:
        suffix = " (replay)" if d.get("replay") else ""
        click.echo(
            f"  {'fired' if d['fired'] else 'not fired'}: {d['rule']}{suffix}"
            + ("" if d["fired"] else f" — {d.get('reason')}")
        )


@click.group()
def deadletters() -> None:
    """Actions that failed after all their retries, and retrying them."""


@deadletters.command("list")
@click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@config_option
@json_option
@handle_errors
def dead_list(status: str, config_path: str | None, as_json: bool) -> None:
    """Dead letters: the action, its error, how many tries."""
    listing = client(config_path).call("deadletters.list", status=status)
    if as_json:
        print_json(listing)
        return
    print_table(
        ["id", "rule", "action", "tries", "status", "error"],
        [[d["id"], d["rule"], d["label"], d["attempts"], d["status"], d["error"][:80]] for d in listing],
    )


@deadletters.command("retry")
@click.argument("letter_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="retry every open dead letter")
@config_option
@json_option
@handle_errors
def dead_retry(letter_id: str | None, retry_all: bool, config_path: str | None, as_json: bool) -> None:
    """Run a dead letter's action again (with its retry policy). Exit 1 if any still fails."""
    if bool(letter_id) == retry_all:
        raise click.UsageError("give a dead letter ID or --all")
    results = client(config_path, timeout=None).call("deadletters.retry", id=letter_id, all=retry_all)
    if as_json:
        print_json(results)
    else:
        for r in results:
            click.echo(f"{r['id']}: {'ok' if r['ok'] else 'failed: ' + r.get('error', '')}")
    if not all(r["ok"] for r in results):
        sys.exit(EXIT_FAILED)


COMMANDS = [rules, deadletters]
