"""Issue 13 through real daemons: Salt's targets, nodegroups, batches, --failhard, --async,
``reactord call`` and key globs, on one master with six minions."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import Setup, run_cli, wait_until

pytestmark = pytest.mark.slow

GRAINS = {
    "web01": {"roles": ["web"], "region": "eu"},
    "web02": {"roles": ["web"], "region": "eu"},
    "web03": {"roles": ["web"], "region": "us"},
    "web04": {"roles": ["web", "edge"], "region": "us"},
    "db01": {"roles": ["db"], "region": "eu"},
    "db02": {"roles": ["db"], "region": "us"},
}
NODEGROUPS = {
    "web-eu": "G@roles:web and G@region:eu",
    "databases": ["db01", "db02"],
    "eu-but-web02": "(N@web-eu or N@databases) and G@region:eu and not web02",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup.create(tmp_path_factory.mktemp("fleet"), nodegroups=NODEGROUPS)
    (setup.root / "reactor.d" / "example.yaml").unlink()  # only this module's jobs
    setup.start_master()
    for minion_id, grains in GRAINS.items():
        # web03 does not allow test.sleep: the one minion a batch fails on
        allow = ["test.ping", "test.echo", "grains.*", "beacons.*"] if minion_id == "web03" else None
        # one load beacon that sends nothing on its own for an hour: beacons.test must not either
        changes: dict[str, Any] = {
            "grains": grains,
            "beacons": {"load": {"interval": "1h", "emit_at_start": False}},
        }
        if allow is not None:
            changes["functions"] = {"allow": allow}
        setup.start_minion(minion_id, **changes)
    setup.accept_all(*GRAINS)
    yield setup
    assert setup.close() == []


def accepted(setup: Setup) -> list[str]:
    return sorted(setup.cli_json("key", "list")["accepted"])


def test_key_globs_confirm_accept_and_list_what_changed(fleet: Setup) -> None:
    labs = [fleet.start_minion(f"lab0{n}") for n in (1, 2, 3)]
    wait_until(
        lambda: {"lab01", "lab02", "lab03"} <= set(fleet.cli_json("key", "list")["pending"]), 30, "labs"
    )
    refused = fleet.cli("key", "accept", "lab*")  # several keys, no terminal, no -y
    assert refused.returncode == 2 and "matches 3 keys" in refused.stderr and "-y" in refused.stderr
    assert not {"lab01", "lab02", "lab03"} & set(accepted(fleet))

    done = fleet.cli("key", "accept", "lab0[12]", "-y")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "accepted: lab01, lab02"
    assert fleet.cli("key", "accept", "nomatch*").returncode == 1

    rejected = fleet.cli("key", "reject", "lab*", "--json")  # a glob takes pending keys only: lab03
    assert json.loads(rejected.stdout) == {"rejected": ["lab03"]}
    assert {"lab01", "lab02"} <= set(accepted(fleet))
    one = fleet.cli("key", "reject", "lab0[2]", "--include-accepted", "--json")  # one match: no question
    assert json.loads(one.stdout) == {"rejected": ["lab02"]}
    deleted = fleet.cli("key", "delete", "lab*", "-y", "--json")  # every state
    assert json.loads(deleted.stdout) == {"deleted": ["lab01", "lab02", "lab03"]}
    for daemon in labs:
        assert daemon.stop() == 0
    leftover = [m for ids in fleet.cli_json("key", "list").values() for m in ids if m.startswith("lab")]
    if leftover:  # a lab minion said hello again before it stopped: its new pending key goes too
        assert fleet.cli("key", "delete", "lab*", "-y").returncode == 0
    assert accepted(fleet) == sorted(GRAINS)


def run_json(setup: Setup, *args: str) -> tuple[int, dict[str, Any]]:
    result = setup.cli("run", *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(
    "flags, target, expected",
    [
        ((), "web0[12]", ["web01", "web02"]),
        (("-E",), "^(web01|db02)$", ["db02", "web01"]),
        (("-L",), "web04,db01,ghost", ["db01", "web04"]),
        (("-G",), "roles:edge", ["web04"]),
        (("-P",), "region:^u", ["db02", "web03", "web04"]),
        (("-C",), "G@roles:web and web* and not L@web04", ["web01", "web02", "web03"]),
        (("-C",), "( G@region:eu or E@4$ ) and not G@roles:db", ["web01", "web02", "web04"]),
        (("-N",), "web-eu", ["web01", "web02"]),
        (("-N",), "eu-but-web02", ["db01", "web01"]),
        (("-C",), "N@databases and not db01", ["db02"]),
    ],
)
def test_targets_compound_and_nodegroups(
    fleet: Setup, flags: tuple[str, ...], target: str, expected: list[str]
) -> None:
    code, result = run_json(fleet, *flags, target, "test.ping")
    assert code == 0
    assert sorted(result["returns"]) == expected


def test_bad_targets_are_usage_errors_that_say_why(fleet: Setup) -> None:
    for args, message in [
        (("-C", "web* and", "test.ping"), "ends where a term is expected"),
        (("-C", "S@10.0.0.0/8", "test.ping"), "not supported"),
        (("-N", "nosuch", "test.ping"), "no nodegroup 'nosuch'"),
        (("-E", "web(", "test.ping"), "regular expression"),
        (("-L", "-C", "web01", "test.ping"), "one target type"),
    ]:
        result = fleet.cli("run", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    # an operator followed by stray operator characters is a typo: exit 2 at once, no waiting
    typo = fleet.cli("gate", "reactor/**", "data.x <<< 2", "--wait", "600", timeout=30)
    assert typo.returncode == 2 and "'<<<' is not an operator" in typo.stderr, typo.stderr
    # the same expressions in the state view and the gate
    rows = fleet.cli_json("state", "-C", "G@roles:db")["rows"]
    assert {r["source"] for r in rows} <= {"db01", "db02"}
    gate = fleet.cli("gate", "reactor/**", "-N", "nosuch")
    assert gate.returncode == 2 and "no nodegroup 'nosuch'" in gate.stderr


def test_batch_runs_two_at_a_time_in_order_of_returns(fleet: Setup) -> None:
    result = fleet.cli("run", "-G", "roles:web", "-b", "2", "test.sleep", "0.6", "-L")
    assert result.returncode == 2  # -G and -L
    minions = ["db01", "db02", "web01", "web02", "web04"]  # web03 does not allow test.sleep
    result = fleet.cli("run", "-L", ",".join(minions), "-b", "2", "test.sleep", "0.6")
    assert result.returncode == 0, result.stderr
    assert "batch 2" in result.stderr and result.stderr.count("  started ") == 5
    assert "5 minions: 5 succeeded" in result.stderr
    jid = result.stderr.split()[1].rstrip(":")
    job = fleet.cli_json("jobs", "show", jid)
    assert job["batch"] == {"size": 2, "percent": 0.0, "wait": 0.0, "failhard": False}
    assert job["summary"]["succeeded"] == 5 and job["finished"]
    spans = sorted((r["started"], r["finished"]) for r in job["returns"].values())
    # never more than two at once, and each later minion started after an earlier one returned
    for index, (start, _) in enumerate(spans):
        running = sum(1 for s, f in spans[:index] if f > start)
        assert running <= 1, spans
    assert spans[2][0] >= min(f for _, f in spans[:2]) - 0.05, spans  # clock: the same host's
    assert spans[-1][0] - spans[0][0] >= 0.6 * 2 - 0.1  # three rounds of 0.6 s


def test_batch_percent_with_failhard_stops_after_the_first_failure(fleet: Setup) -> None:
    result = fleet.cli("run", "-G", "roles:web", "-b", "25%", "--failhard", "test.sleep", "0.1", "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    summary = out["summary"]
    # 25% of four is one at a time, in id order: web01, web02 pass, web03 refuses, web04 never runs
    assert summary["succeeded"] == 2 and summary["failed"] == ["web03"]
    assert summary["not_run"] == ["web04"] and summary["stopped_by"] == "web03"
    assert out["returns"]["web04"]["error"].startswith("not run")
    shown = fleet.cli("jobs", "show", out["jid"])
    assert shown.returncode == 1
    assert "--failhard stopped the batch after web03 failed" in shown.stdout
    assert "web03:\n    ERROR: test.sleep is not allowed" in shown.stdout


def test_async_returns_at_once_and_jobs_show_waits(fleet: Setup) -> None:
    started = fleet.cli("run", "--async", "-N", "web-eu", "test.sleep", "3", "--json")
    assert started.returncode == 0, started.stderr
    jid = json.loads(started.stdout)["jid"]
    early = fleet.cli_json("jobs", "show", jid)
    assert early["finished"] is False and early["returns"] == {"web01": None, "web02": None}
    waited = fleet.cli("jobs", "show", jid, "--wait", "-t", "30")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "web01:\n    true\nweb02:\n    true" in waited.stdout
    assert "2 minions: 2 succeeded" in waited.stdout


def test_rule_run_action_with_a_batch_and_a_compound_target(fleet: Setup) -> None:
    rules = fleet.root / "reactor.d" / "batch.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "rolling",
                        "on": "deploy/start",
                        "do": [
                            {
                                "run": "test.sleep",
                                "args": [0.3],
                                "target": "G@roles:web and not web03",
                                "target_type": "compound",
                                "batch": 1,
                                "name": "rolling sleep for {{ data.version }}",
                            }
                        ],
                    }
                ]
            }
        )
    )
    check = fleet.cli("rules", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert fleet.cli("rules", "reload").returncode == 0
    fired = fleet.cli("event", "fire", "deploy/start", "-d", "version=1.2")
    assert fired.returncode == 0, fired.stderr

    def job() -> dict[str, Any] | None:
        for entry in fleet.cli_json("jobs"):
            if entry["origin"] == "rule:rolling" and entry.get("summary"):
                return entry  # type: ignore[no-any-return]
        return None

    done = wait_until(job, 30, "the rule's batched job to end")
    assert done["batch"]["size"] == 1 and done["minions"] == ["web01", "web02", "web04"]
    shown = fleet.cli_json("jobs", "show", done["jid"])
    spans = sorted((r["started"], r["finished"]) for r in shown["returns"].values())
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in itertools.pairwise(spans))
    event = fleet.cli_json("event", "show", fired.stdout.strip())
    assert [a["label"] for a in event["actions"]] == ["rolling sleep for 1.2"]

    # a failed run reads as text in the dead letters, not as a Python dict
    failing = fleet.root / "reactor.d" / "failing.yaml"
    failing.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {"name": "failing", "on": "deploy/bad", "do": [{"run": "test.fail", "target": "web01"}]}
                ]
            }
        )
    )
    assert fleet.cli("rules", "reload").returncode == 0
    assert fleet.cli("event", "fire", "deploy/bad").returncode == 0

    def letters() -> list[dict[str, Any]]:
        return [d for d in fleet.cli_json("deadletters", "list") if d["rule"] == "failing"]

    (letter,) = wait_until(letters, 30, "a dead letter")
    assert letter["error"].endswith("failed on 1 of 1: web01: RuntimeError: test.fail was called"), letter
    failing.unlink()

    rules.write_text(rules.read_text().replace("web03", "N@nosuch"))
    bad = fleet.cli("rules", "check")
    assert bad.returncode == 2 and "no nodegroup 'nosuch'" in bad.stderr
    rules.unlink()
    assert fleet.cli("rules", "reload").returncode == 0


def test_call_runs_through_the_local_minion(fleet: Setup) -> None:
    config = fleet.root / "minion-web01.yaml"
    ping = run_cli("call", "test.ping", "-c", str(config))
    assert ping.returncode == 0, ping.stderr
    assert ping.stdout == "web01:\n    true\n"
    echo = run_cli("call", "test.echo", "text=[a, b]", "-c", str(config), "--json")
    assert json.loads(echo.stdout)["return"] == ["a", "b"]
    refused = run_cli("call", "test.sleep", "0", "-c", str(fleet.root / "minion-web03.yaml"))
    assert refused.returncode == 1 and "not allowed on this minion" in refused.stdout
    tested = run_cli("call", "beacons.test", "load", "-c", str(config), "--json")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    (report,) = json.loads(tested.stdout)["return"]
    assert report["tag"] == "minion/web01/beacon/load" and "load1" in report["data"]
    text = run_cli("call", "beacons.test", "load", "-c", str(config))
    assert text.returncode == 0 and "tag: minion/web01/beacon/load" in text.stdout
    missing = run_cli("call", "beacons.test", "nosuch", "-c", str(config))
    assert missing.returncode == 1 and "no beacon 'nosuch'" in missing.stdout
    # nothing went to the master: no job, no beacon event (the beacon itself sends none for 1h)
    ping_back = fleet.cli("run", "web01", "test.ping")  # a round trip: anything sent before it is in
    assert ping_back.returncode == 0
    assert not any(j["fun"] in ("beacons.test", "test.echo") for j in fleet.cli_json("jobs"))
    assert fleet.events("--tag", "minion/web01/beacon/**") == []
    nobody = run_cli("call", "test.ping", "-c", str(fleet.root / "minion-ghost.yaml"))
    assert nobody.returncode == 2 and "minion-ghost.yaml" in nobody.stderr
    usage = run_cli("call", "--help")
    assert usage.returncode == 0 and "beacons.test" in usage.stdout


def test_a_run_stopped_by_ctrl_c_goes_on_on_the_master(fleet: Setup) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reactord",
            "run",
            "-N",
            "web-eu",
            "-b",
            "1",
            "test.sleep",
            "1",
            "-c",
            str(fleet.master_yaml),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    header = proc.stderr.readline()  # "job JID: 2 minion(s), batch 1": the job has started
    assert header.startswith("job "), header
    jid = header.split()[1].rstrip(":")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    shown = fleet.cli("jobs", "show", jid, "--wait", "-t", "60")
    assert shown.returncode == 0, shown.stdout
    assert "2 minions: 2 succeeded" in shown.stdout
