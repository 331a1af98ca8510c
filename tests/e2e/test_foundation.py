"""Issue 2 through the real CLI and real daemons on 127.0.0.1: keys, the link, presence, jobs."""

from __future__ import annotations

import json
import signal
import time

import pytest

from reactord.protocol import messages as m
from tests.peers import RawPeer, master_key
from tests.support import Setup, run_cli, wait_until


def _ping_all(setup: Setup, *extra: str) -> dict[str, dict[str, object]]:
    result = setup.cli("run", *extra, "test.ping", "--json", "--timeout", "5")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)["returns"]  # type: ignore[no-any-return]


def test_init_two_minions_pending_accept_run_and_grain_target(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01", grains={"role": "web"})
    setup.start_minion("db01", grains={"role": "db"})
    wait_until(lambda: setup.cli_json("key", "list")["pending"] == ["db01", "web01"], 15, "two pending keys")

    assert setup.cli("key", "accept", "--all").returncode == 0
    wait_until(lambda: setup.presence("web01") == "up" and setup.presence("db01") == "up", 15, "both up")

    returns = _ping_all(setup, "*")
    assert {m: (r["success"], r["return"], r["retcode"]) for m, r in returns.items()} == {
        "db01": (True, True, 0),
        "web01": (True, True, 0),
    }
    assert all(0 < r["started"] <= r["finished"] for r in returns.values())  # the minion's own clock

    by_grain = setup.cli("run", "-G", "role:db", "grains.get", "role", "--json")
    assert by_grain.returncode == 0, by_grain.stderr
    assert {m: r["return"] for m, r in json.loads(by_grain.stdout)["returns"].items()} == {"db01": "db"}

    by_list = setup.cli("run", "-L", "web01", "test.echo", "hello", "--json")
    assert json.loads(by_list.stdout)["returns"]["web01"]["return"] == "hello"

    listing = setup.cli_json("minions")
    assert {x["id"]: x["grains"]["role"] for x in listing} == {"db01": "db", "web01": "web"}
    assert all(x["grains"]["num_cpus"] >= 1 and x["grains"]["kernel"] for x in listing)

    jobs = setup.cli_json("jobs")
    assert [j["fun"] for j in jobs][:3] == ["test.echo", "grains.get", "test.ping"]
    shown = setup.cli_json("jobs", "show", jobs[2]["jid"])
    assert shown["returns"]["web01"]["return"] is True


def test_unaccepted_minion_gets_no_command_and_nothing_it_sends_is_processed(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 15, "web01 pending")

    refused = setup.cli("run", "*", "test.ping")
    assert refused.returncode == 1
    assert "no accepted minion matches" in refused.stderr
    assert setup.cli("run", "-L", "web01", "test.ping").returncode == 1
    assert setup.minion_jobs("web01") == []

    # A peer with an unknown key speaks every message kind; only hello is read.
    peer = RawPeer(setup.ports[1], master_key(setup.root))
    try:
        before = setup.cli_json("status")["counters"].get("drop.unauthenticated", 0)
        peer.send(m.Heartbeat(time=time.time()))
        peer.send(m.Return(jid="01J00000000000000000000000", id="web01", success=True, retcode=0, ret=1))
        wait_until(
            lambda: setup.cli_json("status")["counters"].get("drop.unauthenticated", 0) >= before + 2,
            10,
            "the drops to be counted",
        )
        assert peer.recv(timeout=0.5) is None  # no pong, no return_ack
        peer.send(m.Hello(id="intruder", grains={}, version="x"))
        welcome = peer.recv()
        assert isinstance(welcome, m.Welcome) and welcome.status == "pending"
        assert welcome.signing_key == b""
    finally:
        peer.close()
    assert setup.cli_json("minions") == []
    assert setup.cli_json("jobs") == []


def test_a_second_key_claiming_an_accepted_id_is_denied_and_the_real_one_keeps_working(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 15, "web01 pending")
    assert setup.cli("key", "accept", "web01").returncode == 0
    wait_until(lambda: setup.presence("web01") == "up", 15, "web01 up")

    impostor = setup.start_minion("web01", pki="impostor")
    wait_until(lambda: setup.cli_json("key", "list")["denied"] == ["web01"], 15, "the impostor denied")
    assert setup.key_state("web01") == "accepted"
    assert setup.cli("key", "accept", "web01").returncode == 1  # denied keys are never accepted

    assert _ping_all(setup, "*")["web01"]["success"] is True
    assert setup.minion_jobs("impostor") == []
    assert impostor.alive()  # refused, and still retrying without crashing


def test_deleting_a_connected_minion_cuts_it_off_within_a_second(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.start_minion("web02")
    wait_until(lambda: len(setup.cli_json("key", "list")["pending"]) == 2, 15, "two pending")
    setup.cli("key", "accept", "--all")
    wait_until(lambda: setup.presence("web02") == "up", 15, "web02 up")
    assert _ping_all(setup, "*")["web02"]["success"] is True
    ran_before = setup.minion_jobs("web02")

    deleted_at = time.monotonic()
    assert setup.cli("key", "delete", "web02").returncode == 0
    returns = _ping_all(setup, "*")
    assert time.monotonic() - deleted_at < 5
    assert list(returns) == ["web01"]
    refused = setup.cli("run", "-L", "web02", "test.ping")
    assert refused.returncode == 1 and "no accepted minion" in refused.stderr
    assert setup.minion_jobs("web02") == ran_before

    # Its heartbeats are now dropped, and when it says hello again its key is pending anew.
    wait_until(lambda: setup.key_state("web02") == "pending", 15, "web02 pending again")
    assert setup.minion_jobs("web02") == ran_before


def test_rejecting_a_connected_minion_cuts_it_off(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 15, "pending")
    setup.cli("key", "accept", "web01")
    wait_until(lambda: setup.presence("web01") == "up", 15, "up")
    assert setup.cli("key", "reject", "web01").returncode == 0
    assert setup.cli("run", "*", "test.ping").returncode == 1
    assert setup.key_state("web01") == "rejected"


@pytest.mark.slow
def test_minion_survives_master_sigkill_and_runs_again_within_ten_seconds(setup: Setup) -> None:
    master = setup.start_master()
    minion = setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 15, "pending")
    setup.cli("key", "accept", "web01")
    wait_until(lambda: setup.presence("web01") == "up", 15, "up")

    master.kill()
    assert master.proc.returncode == -signal.SIGKILL
    setup.daemons.remove(master)
    setup.start_master()
    restarted = time.monotonic()
    wait_until(lambda: _ping_all(setup, "*").get("web01", {}).get("success") is True, 10, "run to work again")
    assert time.monotonic() - restarted < 10
    assert minion.alive()
    assert setup.presence("web01") == "up"


def test_presence_goes_suspect_then_down_and_back_up(setup: Setup) -> None:
    setup.start_master()
    minion = setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 15, "pending")
    setup.cli("key", "accept", "web01")
    wait_until(lambda: setup.presence("web01") == "up", 15, "up")
    minion.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: setup.presence("web01") == "suspect", 10, "suspect")
        wait_until(lambda: setup.presence("web01") == "down", 10, "down")
    finally:
        minion.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: setup.presence("web01") == "up", 10, "up again")
    master_log = setup.daemons[0].output()
    assert "web01 is suspect" in master_log and "web01 is down" in master_log


def test_bad_config_exits_2_and_names_the_key(setup: Setup) -> None:
    setup.edit_master(event_port="not-a-port")
    result = run_cli("master", "-c", str(setup.master_yaml))
    assert result.returncode == 2
    assert "event_port" in result.stderr and str(setup.master_yaml) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    setup.edit_master(event_port=setup.ports[0], colour="blue")
    result = run_cli("master", "-c", str(setup.master_yaml))
    assert result.returncode == 2 and "colour" in result.stderr

    missing = run_cli("master", "-c", str(setup.root / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr

    bad_minion = setup.minion_yaml("web01", command_port=70000)
    result = run_cli("minion", "-c", str(bad_minion))
    assert result.returncode == 2 and "command_port" in result.stderr


def test_admin_commands_exit_3_when_no_master_runs(setup: Setup) -> None:
    for args in (["key", "list"], ["minions"], ["run", "*", "test.ping"], ["jobs"], ["status"]):
        result = setup.cli(*args)
        assert result.returncode == 3, (args, result.stderr)
        assert "no master is listening" in result.stderr
