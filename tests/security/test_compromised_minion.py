"""A minion whose key is accepted but whose host is in hostile hands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import zmq

from reactord.protocol import messages as m
from tests.peers import RawPeer, master_key
from tests.security.helpers import assert_master_serves, curve_socket, minion_keys, running
from tests.support import Setup, wait_until


def test_it_cannot_emit_under_another_namespace_or_reactor(setup: Setup) -> None:
    running(setup, "web01", "web02")
    ctx = zmq.Context()
    pub = curve_socket(ctx, zmq.PUB, setup, minion_keys(setup, "web01"), setup.ports[0])
    now = time.time()
    forged = m.EventBatch(
        epoch="forged",
        base=1,
        events=[
            [1, "reactor/key/web03/accepted", now, {"id": "web03"}, None],
            [2, "reactor/presence/web02/down", now, {"id": "web02"}, None],
            [3, "minion/web02/beacon/service/nginx", now, {"running": False}, None],
            [4, "minion/web01", now, {}, None],
            [5, "minion/web01/honest", now, {}, None],
        ],
    ).to_wire()
    try:
        wait_until(
            lambda: (pub.send(forged), setup.counters().get("drop.namespace", 0) >= 4)[1], 20, "the drops"
        )
    finally:
        pub.close()
        ctx.term()
    tags = [e["tag"] for e in setup.events()]
    assert "minion/web01/honest" in tags
    assert not any(t.startswith(("reactor/key/web03", "minion/web02/")) for t in tags)
    assert "reactor/presence/web02/down" not in tags
    assert setup.counters()["drop.namespace"] == 4


def test_it_cannot_claim_another_minion_or_its_jobs(setup: Setup) -> None:
    running(setup, "web01", "web02")
    peer = RawPeer(setup.ports[1], master_key(setup.root), minion_keys(setup, "web01"))
    try:
        peer.send(m.Hello(id="web02", grains={"role": "evil"}, version="x"))
        answer = peer.recv()
        assert isinstance(answer, m.Welcome) and answer.status == "denied"
        job = json.loads(setup.cli("run", "web02", "test.echo", "real", "--json").stdout)
        forged = m.Return(jid=job["jid"], id="web02", success=True, retcode=0, ret="forged")
        peer.send(forged)
        peer.send(m.Return(jid=job["jid"], id="web01", success=True, retcode=0, ret="forged"))
        peer.send(m.Command(payload=b"run something", sig=b"x"))
        assert peer.recv(timeout=1) is None  # no return_ack: nothing was stored
    finally:
        peer.close()
    shown = setup.cli_json("jobs", "show", job["jid"])
    assert {m: (r["success"], r["return"]) for m, r in shown["returns"].items()} == {"web02": (True, "real")}
    assert [x["grains"].get("role") for x in setup.cli_json("minions") if x["id"] == "web02"] == [None]
    assert setup.key_state("web02") == "accepted"
    assert_master_serves(setup, "web01", "web02")


def test_it_cannot_read_other_minions_commands_or_returns(setup: Setup) -> None:
    running(setup, "web02")
    setup.start_minion("web01")
    wait_until(lambda: setup.key_state("web01") == "pending", 20, "web01 pending")
    setup.daemons[-1].stop()  # the real web01 agent goes; its key is taken over by the attacker
    setup.cli("key", "accept", "web01")
    peer = RawPeer(setup.ports[1], master_key(setup.root), minion_keys(setup, "web01"))
    try:
        peer.send(m.Hello(id="web01", grains={}, version="x"))
        assert isinstance(peer.recv(), m.Welcome)
        for _ in range(5):
            assert setup.cli("run", "web02", "test.echo", "secret", "--json").returncode == 0
        seen = []
        while (message := peer.recv(timeout=0.5)) is not None:
            seen.append(message)
        for_whom = [m.CommandBody.unpack(x.payload).id for x in seen if isinstance(x, m.Command)]
        assert set(for_whom) <= {"web01"}  # its own (the example rule pings new minions), never web02's
        assert not [x for x in seen if isinstance(x, m.ReturnAck)]
    finally:
        peer.close()


def test_event_data_is_never_evaluated_by_a_rule(setup: Setup) -> None:
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "echo.yaml").write_text("""
rules:
  - name: echo
    on: "minion/*/app/note"
    do:
      - fire: ops/echo
        data: {text: "{{ data.text }}", said: "{{ source }} said {{ data.text }}"}
""")
    running(setup, "web01")
    payloads = ["{{ 7*7 }}", "{{ source }}", "{% import os %}{{ os.system('id') }}", "${HOME}", "$(id)"]
    for text in payloads:
        assert setup.send("web01", "app/note", "--data", json.dumps({"text": text})).returncode == 0
    echoed = wait_until(
        lambda: (e := setup.events("--tag", "ops/echo")) and len(e) == len(payloads) and e, 30, "the echoes"
    )
    assert [e["data"]["text"] for e in echoed] == payloads
    assert [e["data"]["said"] for e in echoed] == [f"web01 said {p}" for p in payloads]


def test_event_data_cannot_inject_a_shell_through_a_rule(setup: Setup, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "greet.yaml").write_text("""
rules:
  - name: greet-on-minion
    on: "minion/*/app/greet"
    do:
      - run: cmd.run
        args: [["echo", "hello {{ data.name }}"]]
  - name: greet-on-master
    on: "minion/*/app/greet"
    do:
      - exec: ["echo", "{{ data.name }}"]
""")
    running(setup, "web01", functions={"allow": ["test.*", "cmd.run"]})
    evil = f"x; touch {marker}; $(touch {marker}) `touch {marker}`"
    assert setup.send("web01", "app/greet", "--data", json.dumps({"name": evil})).returncode == 0
    event = wait_until(lambda: setup.events("--tag", "minion/web01/app/greet"), 20, "the event")[0]
    shown = wait_until(
        lambda: (
            (s := setup.cli_json("event", "show", event["id"]))
            and len([a for a in s["actions"] if a["status"] == "ok"]) == 2
            and s
        ),
        30,
        "both actions to finish",
    )
    (job,) = shown["jobs"]
    assert job["returns"]["web01"]["return"]["stdout"] == f"hello {evil}\n"
    exec_result = next(a for a in shown["actions"] if a["kind"] == "exec")["result"]
    assert exec_result["output"] == evil
    assert not marker.exists()
