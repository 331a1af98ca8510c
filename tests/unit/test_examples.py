"""Every example rule set is valid and does what its README line says, through `rules test`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reactord.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"

EXPECTED = {
    "restart-dead-service": [[], ["restart-nginx"], [], []],
    "clean-full-disk": [[], ["clean-root-disk"], ["page-on-critical-disk"]],
    "deploy-gate-on-load": [[], [], [], ["freeze-deploys-on-load"], [], ["release-deploys"]],
    "flapping-node": [[], [], [], ["node-flapping"]],
    "config-changed": [["reload-nginx-on-config-change", "unexpected-config-change"], []],
    # rules over several events: the step fired on, and (absence) the deadline's own step
    "disk-and-service": [[], [], ["disk-full-and-nginx-down"], []],
    "deploy-never-finished": [[], [], [], ["deploy-never-finished"]],
    "bad-config-rollout": [[], [], [], [], ["roll-back-bad-config"]],
    "web-tier-overload": [[]] * 4 + [["web-tier-overloaded"]] + [[]] * 5 + [["web-tier-overloaded"]],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_rule_set(name: str) -> None:
    folder = EXAMPLES / name
    result = CliRunner().invoke(
        cli, ["rules", "test", str(folder), "--event", str(folder / "events.json"), "--json"]
    )
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["steps"]
    assert [[d["rule"] for d in s["decisions"] if d["fired"]] for s in steps] == EXPECTED[name]
    assert all("error" not in a for s in steps for a in s["actions"])
    expected = folder / "expected.txt"
    if expected.exists():  # the text the folder's README shows, word for word
        text = CliRunner().invoke(cli, ["rules", "test", str(folder), "--event", str(folder / "events.json")])
        assert text.output == expected.read_text()


def test_every_example_folder_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(EXPECTED)


def test_rules_test_exit_codes(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - name: a\n    on: x/y\n    do: [{log: hi}]\n")
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"tag": "x/z"}))
    runner = CliRunner()
    assert runner.invoke(cli, ["rules", "test", str(rules), "--event", str(event)]).exit_code == 1
    event.write_text(json.dumps({"tag": "x/y"}))
    assert runner.invoke(cli, ["rules", "test", str(rules), "--event", str(event)]).exit_code == 0
    event.write_text("{not json")
    assert runner.invoke(cli, ["rules", "test", str(rules), "--event", str(event)]).exit_code == 2
    rules.write_text("rules:\n  - name: a\n")
    bad = runner.invoke(cli, ["rules", "test", str(rules), "--event", str(event)])
    assert bad.exit_code == 2 and "r.yaml:2" in bad.output
    assert runner.invoke(cli, ["rules", "check", str(rules)]).exit_code == 2
    assert runner.invoke(cli, ["rules", "check", str(EXAMPLES / "flapping-node")]).exit_code == 0
