"""``rules test`` and ``rules check`` as an operator runs them (click's runner, no master)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from reactord.cli import cli

HOLD = """
rules:
  - name: disk-full-for-2m
    on: "minion/*/beacon/disk/*"
    when:
      data.percent: {gte: 90}
    for: 2m
    do:
      - log: "{{ source }}: {{ data.mount }} above 90% for 2 minutes"
"""
T0 = 1764000000  # 2025-11-24T16:00:00Z


def _hold_files(tmp_path: Path) -> tuple[Path, Path]:
    rules, events = tmp_path / "hold.yaml", tmp_path / "hold.json"
    rules.write_text(HOLD)
    readings = [(0, 91), (60, 88), (90, 93), (200, 94), (260, 95)]
    events.write_text(
        json.dumps(
            [
                {
                    "tag": "minion/db01/beacon/disk/var",
                    "source": "db01",
                    "time": T0 + dt,
                    "data": {"percent": p},
                }
                for dt, p in readings
            ]
        )
    )
    return rules, events


def test_rules_test_shows_a_for_firing_when_the_hold_came_due(tmp_path: Path) -> None:
    rules, events = _hold_files(tmp_path)
    text = CliRunner().invoke(cli, ["rules", "test", str(rules), "--event", str(events)])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    # the hold started at 16:01:30 (93 after the dip to 88) and came due two minutes later,
    # between the events of 16:03:20 and 16:04:20
    due = lines.index(
        "minion/db01/beacon/disk/var (db01, 2025-11-24T16:03:30.000Z, for came due;"
        " its event at 2025-11-24T16:03:20.000Z)"
    )
    assert lines[due - 2 : due] == [
        "minion/db01/beacon/disk/var (db01, 2025-11-24T16:03:20.000Z)",
        "  no    disk-full-for-2m: for: holding 110.0s of 120s",
    ]
    assert lines[due + 1] == "  FIRES disk-full-for-2m"
    assert lines[due + 3] == "minion/db01/beacon/disk/var (db01, 2025-11-24T16:04:20.000Z)"

    result = CliRunner().invoke(cli, ["rules", "test", str(rules), "--event", str(events), "--json"])
    steps = json.loads(result.output)["steps"]
    assert [(s["trigger"], s["time"] - T0, s["event"]["time"] - T0) for s in steps] == [
        ("event", 0, 0),
        ("event", 60, 60),
        ("event", 90, 90),
        ("event", 200, 200),
        ("for", 210, 200),
        ("event", 260, 260),
    ]
    assert [d["fired"] for d in steps[4]["decisions"]] == [True]


def test_a_hold_due_exactly_at_the_next_event_fires_before_it(tmp_path: Path) -> None:
    rules, events = _hold_files(tmp_path)
    events.write_text(
        json.dumps(
            [
                {
                    "tag": "minion/db01/beacon/disk/var",
                    "source": "db01",
                    "time": T0 + dt,
                    "data": {"percent": 95},
                }
                for dt in (0.5, 120.5, 130)
            ]
        )
    )
    result = CliRunner().invoke(cli, ["rules", "test", str(rules), "--event", str(events), "--json"])
    steps = json.loads(result.output)["steps"]
    assert [(s["trigger"], round(s["time"] - T0, 3)) for s in steps] == [
        ("event", 0.5),
        ("for", 120.5),
        ("event", 120.5),
        ("event", 130),
    ]
    assert [d["fired"] for s in steps for d in s["decisions"]] == [False, True, False, False]


CALLS = """
rules:
  - name: calls
    on: ops/deploy
    do:
      - run: tset.pnig
      - run: test.ping
      - run: cert.days_left
      - run: acme.deploy
"""


def test_rules_check_warns_of_functions_no_minion_module_or_plugin_provides(tmp_path: Path) -> None:
    rules = tmp_path / "calls.yaml"
    rules.write_text(CALLS)
    text = CliRunner().invoke(cli, ["rules", "check", str(rules)])
    assert text.exit_code == 0, text.output  # a warning, not an error
    assert text.stdout == "ok: 1 rules in 1 files\n"
    assert text.stderr.splitlines() == [
        f"warning: {rules}:6: rule calls: run tset.pnig: no built-in minion module or plugin installed"
        " here provides it (did you mean test.ping?); a minion with a plugin of its own may",
        f"warning: {rules}:9: rule calls: run acme.deploy: no built-in minion module or plugin installed"
        " here provides it; a minion with a plugin of its own may",
    ]
    # test.ping is built in; cert.days_left comes from the example plugin installed here

    result = CliRunner().invoke(cli, ["rules", "check", str(rules), "--json"])
    assert result.exit_code == 0
    checked = json.loads(result.stdout)
    assert checked["ok"] is True
    assert [(w["line"], w["rule"], w["function"], w["did_you_mean"]) for w in checked["warnings"]] == [
        (6, "calls", "tset.pnig", "test.ping"),
        (9, "calls", "acme.deploy", None),
    ]
    assert all(w["file"] == str(rules) and w["message"] for w in checked["warnings"])


def test_rules_check_says_when_it_could_not_check_function_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no such interpreter")

    monkeypatch.setattr(subprocess, "run", broken)
    rules = tmp_path / "calls.yaml"
    rules.write_text(CALLS)
    result = CliRunner().invoke(cli, ["rules", "check", str(rules), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["warnings"] == [
        {"message": "the function names of run actions were not checked: no such interpreter"}
    ]
