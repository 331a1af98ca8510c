"""Issue 5 through real daemons: a beacon's event makes a rule run a function on that minion."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import Setup, wait_until

RULES = """
rules:
  - name: stat-new-files
    on: "minion/*/beacon/watched"
    when:
      data.change: created
    do:
      - run: file.stat
        target: "{{ source }}"
        args: ["{{ data.path }}"]
        timeout: 10s
"""


def test_a_file_written_in_a_watched_folder_makes_the_rule_stat_it_on_that_minion(
    setup: Setup, tmp_path: Path
) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "files.yaml").write_text(RULES)
    setup.start_master()
    setup.start_minion(
        "web01",
        beacons={"watched": {"type": "file", "paths": [str(watched)], "interval": "0.2s"}},
        functions={"allow": ["test.*", "file.*"], "file_roots": [str(watched)]},
    )
    setup.accept_all("web01")
    wait_until(
        lambda: setup.cli_json("run", "web01", "test.ping")["returns"]["web01"]["success"], 20, "a ping"
    )

    target = watched / "report.txt"
    target.write_text("hello\n")
    events = wait_until(lambda: setup.events("--tag", "minion/web01/beacon/watched"), 30, "the beacon event")
    assert events[0]["data"]["path"] == str(target) and events[0]["data"]["change"] == "created"

    jobs = wait_until(
        lambda: [j for j in setup.cli_json("jobs") if j["fun"] == "file.stat" and j["returned"]],
        30,
        "the file.stat job to return",
    )
    shown = setup.cli_json("jobs", "show", jobs[0]["jid"])
    assert shown["origin"] == "rule:stat-new-files" and shown["args"] == [str(target)]
    ret = shown["returns"]["web01"]
    assert ret["success"] is True and ret["return"]["size"] == 6 and ret["return"]["path"] == str(target)


def test_shell_injection_traversal_and_the_allow_list_through_the_cli(setup: Setup, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc/passwd")
    setup.start_master()
    setup.start_minion(
        "web01", functions={"allow": ["test.*", "sys.*", "cmd.run", "file.read"], "file_roots": [str(root)]}
    )
    setup.accept_all("web01")
    marker = tmp_path / "pwned"

    result = json.loads(setup.cli("run", "web01", "cmd.run", f"echo a; touch {marker}", "--json").stdout)
    assert result["returns"]["web01"]["return"]["stdout"] == f"a; touch {marker}\n"
    assert not marker.exists()

    for path in (f"{root}/../../etc/shadow", "../../etc/shadow", str(root / "link")):
        refused = setup.cli("run", "web01", "file.read", path, "--json")
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["returns"]["web01"]["success"] is False

    not_allowed = json.loads(setup.cli("run", "web01", "service.stop", "sshd", "--json").stdout)
    assert not_allowed["returns"]["web01"]["error"] == (
        "service.stop is not allowed on this minion (functions.allow in minion.yaml)"
    )
    names = json.loads(setup.cli("run", "web01", "sys.functions", "--json").stdout)["returns"]["web01"][
        "return"
    ]
    assert "cmd.run" in names and "service.stop" not in names
