"""Issue 9 through real daemons: the fleet's state, its past, and the deploy gate."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from tests.support import Setup, wait_until

LOAD = "minion/*/beacon/load"


def report(setup: Setup, minion_id: str, load1: float) -> None:
    assert setup.send(minion_id, "beacon/load", "-d", f"load1={load1}").returncode == 0


def load_of(setup: Setup, minion_id: str) -> float | None:
    rows = setup.cli_json("state", LOAD, "--source", minion_id)["rows"]
    return rows[0]["data"]["load1"] if rows else None


def gate(setup: Setup, *extra: str) -> subprocess.CompletedProcess[str]:
    return setup.cli("gate", LOAD, "data.load1 < 2", *extra)


def test_the_gate_opens_and_closes_with_the_fleet_and_fails_on_stale_state(setup: Setup) -> None:
    setup.edit_master(state={"ttl": "3s"})
    setup.start_master()
    setup.start_minion("web01")
    web02 = setup.start_minion("web02")
    setup.accept_all("web01", "web02")

    missing = gate(setup)
    assert missing.returncode == 1 and "no state reported" in missing.stdout
    report(setup, "web01", 0.5)
    report(setup, "web02", 0.7)
    wait_until(lambda: load_of(setup, "web01") == 0.5 and load_of(setup, "web02") == 0.7, 20, "both states")
    opened = gate(setup, "--json")
    assert opened.returncode == 0, opened.stdout
    assert json.loads(opened.stdout) == {
        "open": True,
        "minions": {"web01": {"ok": True, "reasons": []}, "web02": {"ok": True, "reasons": []}},
    }

    report(setup, "web02", 3.5)
    wait_until(lambda: load_of(setup, "web02") == 3.5, 20, "web02's new state")
    closed = gate(setup)
    assert closed.returncode == 1
    assert "web02: minion/web02/beacon/load: data.load1: expected lt 2, got 3.5" in closed.stdout
    assert gate(setup, "--target", "web01").returncode == 0  # only web01 targeted

    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reactord",
            "gate",
            LOAD,
            "data.load1 < 2",
            "--wait",
            "60",
            "--target",
            "web*",
            "-c",
            str(setup.master_yaml),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        report(setup, "web01", 0.4)  # keep web01 fresh while waiting
        report(setup, "web02", 1.1)
        out, _ = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0 and "gate open" in out

    web02.stop()
    report(setup, "web01", 0.3)
    stale = wait_until(
        lambda: (r := gate(setup)).returncode == 1 and "stale" in r.stdout and r,
        30,
        "web02's state to go stale",
    )
    assert "web02: minion/web02/beacon/load: stale" in stale.stdout
    assert "web01" not in stale.stdout.split("pass", 1)[1]
    assert gate(setup, "--allow-stale").returncode == 0
    rows = setup.cli_json("state", LOAD)["rows"]
    assert {r["source"]: r["stale"] for r in rows} == {"web01": False, "web02": True}


def test_state_at_a_past_moment_is_rebuilt_from_the_log(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    moments = []
    for value in (0.1, 2.2, 3.3, 0.4):
        report(setup, "web01", value)
        wait_until(lambda v=value: load_of(setup, "web01") == v, 20, f"load {value}")
        received = setup.cli_json("state", LOAD)["rows"][0]["received"]
        moments.append((received + 0.0005, value))
    for when, value in moments:
        past = setup.cli_json("state", LOAD, "--at", f"{when:.4f}")
        assert past["complete"] is True
        assert [r["data"]["load1"] for r in past["rows"]] == [value]
    before = setup.cli_json("state", LOAD, "--at", f"{moments[0][0] - 1:.4f}")
    assert before["rows"] == []


def test_a_lost_state_table_is_rebuilt_from_the_log(setup: Setup) -> None:
    master = setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    report(setup, "web01", 1.5)
    wait_until(lambda: load_of(setup, "web01") == 1.5, 20, "the state")
    assert master.stop() == 0
    setup.daemons.remove(master)
    with sqlite3.connect(setup.root / "state" / "master" / "master.db") as conn:
        conn.execute("DELETE FROM state")
    master = setup.start_master()
    assert load_of(setup, "web01") == 1.5
    assert "rebuilt" in master.output()


def test_a_run_action_waits_behind_its_gate(setup: Setup) -> None:
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "rollout.yaml").write_text("""
rules:
  - name: rollout
    on: ci/rollout
    do:
      - run: test.echo
        target: "web*"
        args: [deployed]
        gate: {on: "minion/*/beacon/load", when: {data.load1: {lt: 2}}}
        retry: {attempts: 20, backoff: 0.3s, max_backoff: 0.5s, jitter: 0}
""")
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    report(setup, "web01", 9.0)
    wait_until(lambda: load_of(setup, "web01") == 9.0, 20, "a busy fleet")
    event_id = setup.cli("event", "fire", "ci/rollout").stdout.strip()
    wait_until(
        lambda: setup.cli_json("event", "show", event_id)["actions"][0].get("attempts", 0) >= 2,
        20,
        "the gate to hold the action back",
    )
    shown = setup.cli_json("event", "show", event_id)
    assert "gate closed: web01: minion/web01/beacon/load: data.load1" in shown["actions"][0]["error"]
    assert shown["jobs"] == []
    report(setup, "web01", 0.5)
    done = wait_until(
        lambda: (s := setup.cli_json("event", "show", event_id))["actions"][0]["status"] == "ok" and s,
        30,
        "the rollout once the fleet calmed down",
    )
    assert done["jobs"][0]["returns"]["web01"]["return"] == "deployed"
