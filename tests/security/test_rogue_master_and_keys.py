"""A rogue master with another key, and the key life cycle as an attacker meets it."""

from __future__ import annotations

import shutil
import time

import yaml
import zmq

from reactord.protocol import messages as m
from tests.peers import RawPeer, master_key
from tests.security.helpers import assert_master_serves, curve_socket, minion_keys, ping, running
from tests.support import Setup, wait_until


def test_a_rogue_master_with_another_key_cannot_command_a_minion_that_pinned_the_real_one(
    setup: Setup,
) -> None:
    running(setup, "web01")
    real = setup.daemons[0]
    minion = setup.daemons[1]
    assert real.stop() == 0
    setup.daemons.remove(real)

    # The rogue: same ports, its own keys, accepting anyone who says hello.
    rogue_pki = setup.root / "pki" / "master"
    shutil.move(rogue_pki, setup.root / "pki" / "master.real")
    shutil.move(setup.root / "state" / "master", setup.root / "state" / "master.real")
    setup.edit_master(auto_accept=True)
    rogue = setup.start_master()
    wait_until(lambda: "refusing it" in minion.output(), 60, "the minion to refuse the rogue's key")
    assert setup.cli_json("key", "list")["accepted"] == []  # the CURVE handshake never completes
    assert setup.cli("run", "*", "test.ping").returncode == 1
    assert minion.alive()
    ran_before = setup.minion_jobs("web01")
    assert rogue.stop() == 0
    setup.daemons.remove(rogue)

    shutil.rmtree(rogue_pki)
    shutil.rmtree(setup.root / "state" / "master")
    shutil.move(setup.root / "pki" / "master.real", rogue_pki)
    shutil.move(setup.root / "state" / "master.real", setup.root / "state" / "master")
    setup.edit_master(auto_accept=False)
    setup.start_master()
    wait_until(lambda: ping(setup, "web01"), 30, "the minion back with the real master")
    assert len(setup.minion_jobs("web01")) == len(ran_before) + 1


def test_a_deleted_or_rejected_minion_loses_access_at_once(setup: Setup) -> None:
    running(setup, "web01", "web02")
    ctx = zmq.Context()
    pub1 = curve_socket(ctx, zmq.PUB, setup, minion_keys(setup, "web01"), setup.ports[0])
    pub2 = curve_socket(ctx, zmq.PUB, setup, minion_keys(setup, "web02"), setup.ports[0])
    try:
        assert setup.cli("key", "delete", "web01").returncode == 0
        assert setup.cli("key", "reject", "web02").returncode == 0
        for pub, minion_id in ((pub1, "web01"), (pub2, "web02")):
            batch = m.EventBatch(
                epoch="after", base=1, events=[[1, f"minion/{minion_id}/after", time.time(), {}, None]]
            ).to_wire()
            wait_until(
                lambda p=pub, b=batch: (p.send(b), setup.counters().get("drop.unauthenticated", 0) >= 2)[1],
                20,
                "their events to be dropped",
            )
    finally:
        pub1.close()
        pub2.close()
        ctx.term()
    assert setup.events("--tag", "minion/*/after") == []
    assert setup.cli("run", "-L", "web01,web02", "test.ping").returncode == 1
    assert "web02" in setup.cli_json("key", "list")["rejected"]


def test_a_denied_key_never_gets_in(setup: Setup) -> None:
    running(setup, "web01")
    impostor = setup.start_minion("web01", pki="impostor")
    wait_until(lambda: setup.cli_json("key", "list")["denied"] == ["web01"], 20, "the impostor denied")
    peer = RawPeer(setup.ports[1], master_key(setup.root), minion_keys(setup, "impostor"))
    try:
        peer.send(m.Hello(id="web01", grains={}, version="x"))
        assert peer.recv(timeout=1) is None  # refused at the CURVE handshake, every time
        assert peer.send(m.Heartbeat(time=time.time())) is False  # not even a connection to send on
    finally:
        peer.close()
    assert setup.cli("key", "accept", "web01").returncode == 1
    assert setup.minion_jobs("impostor") == []
    assert impostor.alive()
    assert_master_serves(setup, "web01")


def test_auto_accept_is_off_by_default(setup: Setup) -> None:
    config = yaml.safe_load(setup.master_yaml.read_text())
    config.pop("auto_accept", None)
    setup.master_yaml.write_text(yaml.safe_dump(config))
    running(setup)
    setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 20, "a pending key")
    assert setup.cli_json("minions") == []


def test_a_minion_with_master_finger_refuses_a_master_key_that_does_not_match(setup: Setup) -> None:
    running(setup)
    minion = setup.start_minion("web01", master_finger="ab" * 32)
    wait_until(lambda: "refusing it" in minion.output(), 30, "the minion to refuse the offered key")
    assert not (setup.root / "pki" / "web01" / "master.pub").exists()  # nothing pinned
    assert setup.cli_json("key", "list")["pending"] == []  # it never said hello
    assert minion.alive()


def test_a_changed_master_signing_key_is_refused(setup: Setup) -> None:
    running(setup, "web01")
    master = setup.daemons[0]
    minion = setup.daemons[1]
    assert ping(setup, "web01")
    assert master.stop() == 0
    setup.daemons.remove(master)
    (setup.root / "pki" / "master" / "master_sign.pem").unlink()  # the master makes a new one
    (setup.root / "pki" / "master" / "master_sign.pub").unlink()
    ran_before = setup.minion_jobs("web01")
    restarted = time.time()
    setup.start_master()
    # The master can route a command to web01 only once it has heard from it again; a command
    # sent before that reaches no one, and the minion would have nothing to refuse.
    wait_until(
        lambda: any(m["id"] == "web01" and m["last_seen"] > restarted for m in setup.cli_json("minions")),
        30,
        "web01 to be heard by the new master",
    )
    # Whether the minion says hello again (and sees the new key in the welcome) or goes on with
    # its heartbeats (and meets a command signed with it), the new key is refused.
    assert setup.cli("run", "web01", "test.ping", "--timeout", "2").returncode == 1
    wait_until(
        lambda: "signing key changed" in minion.output() or "signature does not verify" in minion.output(),
        30,
        "the minion to refuse the new signing key",
    )
    assert setup.cli("run", "web01", "test.ping", "--timeout", "2").returncode == 1
    assert setup.minion_jobs("web01") == ran_before
    assert minion.alive()
