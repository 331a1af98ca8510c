"""Issue 13, "found on the way", through real daemons: one tag glob everywhere, the listeners
each daemon logs at start, and the command line's own name in its usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import yaml

from tests.support import Daemon, Setup, free_ports, run_cli, wait_until

RULE = """
rules:
  - name: under-x
    on: "webhook/x/**"
    do:
      - log: "{{ tag }}"
        level: debug
"""

#: Tags fired in this order; the glob ``webhook/x/**`` matches the first three only.
TAGS = ["webhook/x", "webhook/x/push", "webhook/x/a/b", "webhook/xy", "other/webhook/x"]
UNDER_X = TAGS[:3]
WATCH = [sys.executable, "-m", "reactord", "event", "watch"]


def test_event_list_replay_state_and_watch_agree_on_a_glob_that_matches_its_own_base(setup: Setup) -> None:
    (setup.root / "reactor.d" / "example.yaml").unlink(missing_ok=True)
    (setup.root / "reactor.d" / "x.yaml").write_text(RULE)
    setup.start_master()
    watch = subprocess.Popen(
        [*WATCH, "webhook/x/**", "--json", "--count", "3", "--timeout", "60", "-c", str(setup.master_yaml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None
        assert "watching" in watch.stderr.readline()
        for tag in TAGS:
            assert setup.cli("event", "fire", tag).returncode == 0
        out, _ = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0
    assert [json.loads(line)["tag"] for line in out.splitlines()] == UNDER_X

    wait_until(lambda: len(setup.events("--tag", "**/x")) == 2, 15, "the events logged")
    assert [e["tag"] for e in setup.events("--tag", "webhook/x/**")] == UNDER_X
    assert [e["tag"] for e in setup.events("--tag", "webhook/x/**", "--limit", "2")] == UNDER_X[1:]
    assert [e["tag"] for e in setup.events("--tag", "webhook/*")] == ["webhook/x", "webhook/xy"]

    replay = setup.cli("event", "replay", "--tag", "webhook/x/**", "--dry-run", "--json")
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(line["tag"], line["rules"]) for line in lines] == [(tag, ["under-x"]) for tag in UNDER_X]
    assert "replayed 3 events: 3 rule firings (dry run)" in replay.stderr

    rows = setup.cli_json("state", "webhook/x/**")["rows"]
    assert sorted(r["tag"] for r in rows) == sorted(UNDER_X)


def test_event_send_names_itself_in_its_usage_errors(tmp_path: Path) -> None:
    for bad in (["--data", "{bad"], ["--data", "[1]"], ["-d", "novalue"]):
        result = run_cli("event", "send", "app/deployed", *bad, "-c", str(tmp_path / "minion.yaml"))
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("Usage: reactord event send [OPTIONS] TAG\n"), result.stderr
        assert "python -m minion" not in result.stderr


def _logged(daemon: Daemon, *parts: str) -> list[str]:
    """The lines of a daemon's log that contain every one of ``parts``."""
    return [line for line in daemon.output().splitlines() if all(p in line for p in parts)]


def test_each_daemon_logs_every_listener_it_opened_once(setup: Setup) -> None:
    master_metrics, minion_metrics, hooks = free_ports(3)
    setup.edit_master(
        metrics={"address": f"127.0.0.1:{master_metrics}"},
        webhooks={"address": f"127.0.0.1:{hooks}", "endpoints": {"ci": {"kind": "json", "secret": "s"}}},
    )
    event_port, command_port, key_port = setup.ports
    interface = yaml.safe_load(setup.master_yaml.read_text()).get("interface", "0.0.0.0")
    master = setup.start_master(level="info")
    minion = setup.start_minion("web01", metrics={"address": f"127.0.0.1:{minion_metrics}"})
    expected = [
        (master, f"events from minions on tcp://{interface}:{event_port} (CURVE)"),
        (master, f"commands to minions on tcp://{interface}:{command_port} (CURVE)"),
        (master, f"key service on tcp://{interface}:{key_port} (plain: the master's public key only)"),
        (master, f"http on http://127.0.0.1:{master_metrics}: metrics /metrics"),
        (master, f"http on http://127.0.0.1:{hooks}: webhooks /hooks/<name>: ci"),
        (master, f"control socket on {setup.root / 'state' / 'master' / 'control.sock'} (owner only)"),
        (minion, f"metrics on http://127.0.0.1:{minion_metrics}/metrics"),
        (minion, f"local socket on {setup.root / 'state' / 'web01' / 'minion.sock'} (owner only)"),
    ]
    for daemon, line in expected:
        found = wait_until(partial(_logged, daemon, line), 20, f"{daemon.name} to log {line!r}")
        assert len(found) == 1 and " INFO " in found[0], found


def test_the_daemons_refuse_a_bad_config_in_one_line_with_exit_2(setup: Setup) -> None:
    text = setup.master_yaml.read_text()
    setup.master_yaml.write_text(text + "event_port: 1\n")  # given twice
    master = run_cli("master", "-c", str(setup.master_yaml))
    assert master.returncode == 2
    assert master.stderr.startswith(f"error: {setup.master_yaml}:")
    assert master.stderr.endswith(": invalid YAML: duplicate key 'event_port'\n")

    # $REACTORD_CONFIG names the master's file, and the minion is started without -c
    setup.master_yaml.write_text(text)
    minion = run_cli("minion", env={"REACTORD_CONFIG": str(setup.master_yaml)})
    assert minion.returncode == 2
    assert len(minion.stderr.splitlines()) == 1, minion.stderr
    assert "unknown key in master.yaml, read as minion.yaml" in minion.stderr

    setup.master_yaml.write_text(text + "auto_acept: true\n")
    master = run_cli("master", "-c", str(setup.master_yaml))
    assert master.returncode == 2
    assert ": auto_acept: unknown key in master.yaml; did you mean auto_accept? (known: " in master.stderr
    missing = run_cli("status", "-c", str(setup.root / "nope.yaml"))
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: {setup.root / 'nope.yaml'}: config file not found (tried -c {setup.root / 'nope.yaml'};"
        " with -c, $REACTORD_CONFIG, ./master.yaml and /etc/reactord/master.yaml are not read)\n"
    )


def test_rules_check_warns_of_an_unknown_function_and_still_exits_0(setup: Setup) -> None:
    (setup.root / "reactor.d" / "typo.yaml").write_text(
        "rules:\n  - name: typo\n    on: ops/x\n    do:\n      - run: tset.pnig\n"
    )
    result = setup.cli("rules", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")
    assert result.stderr == (
        f"warning: {setup.root / 'reactor.d' / 'typo.yaml'}:5: rule typo: run tset.pnig: no built-in"
        " minion module or plugin installed here provides it (did you mean test.ping?); a minion with"
        " a plugin of its own may\n"
    )
