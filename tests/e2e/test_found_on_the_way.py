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
        (master, f"metrics on http://127.0.0.1:{master_metrics}/metrics"),
        (master, f"webhooks on http://127.0.0.1:{hooks}/hooks/<name>: ci"),
        (master, f"control socket on {setup.root / 'state' / 'master' / 'control.sock'} (owner only)"),
        (minion, f"metrics on http://127.0.0.1:{minion_metrics}/metrics"),
        (minion, f"local socket on {setup.root / 'state' / 'web01' / 'minion.sock'} (owner only)"),
    ]
    for daemon, line in expected:
        found = wait_until(partial(_logged, daemon, line), 20, f"{daemon.name} to log {line!r}")
        assert len(found) == 1 and " INFO " in found[0], found
