"""Rules over several events through a real master and real minions: a correlation per key,
a sequence, an absence across a master restart, a fleet condition over six minions with
hysteresis, 100,000 keys against a rule's limit, and the same firings offline and live."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.e2e.test_reactor import fire, write_rules
from tests.support import Setup, run_cli, wait_until

CORRELATE = """
rules:
  - name: disk-and-service
    correlate:
      events:
        disk: {on: "minion/*/app/disk", when: {data.percent: {gte: 95}}}
        nginx: {on: "minion/*/app/nginx", when: {data.running: false}}
      within: 1h
      key: "{{ source }}"
    do:
      - fire: ops/incident
        data:
          host: "{{ source }}"
          percent: "{{ events.disk.data.percent }}"
          disk_from: "{{ events.disk.source }}"
  - name: change-restart-down
    sequence:
      events:
        changed: "minion/*/app/changed"
        restarted: "minion/*/app/restarted"
        down: {on: "minion/*/app/nginx", when: {data.running: false}}
      within: 1h
      key: "{{ source }}"
    do: [{fire: ops/rollback, data: {host: "{{ source }}", change: "{{ events.changed.data.file }}"}}]
  - name: many-keys
    correlate:
      events: {one: "minion/*/app/many", two: "minion/*/app/other"}
      within: 1h
      key: "{{ data.n }}"
      max_keys: 50000
    do: [{log: "{{ events.one.data.n }}"}]
"""


def test_a_correlation_joins_each_hosts_own_events_and_a_sequence_takes_them_in_order(setup: Setup) -> None:
    write_rules(setup, CORRELATE)
    setup.start_master()
    for minion in ("web01", "web02"):
        setup.start_minion(minion)
    setup.accept_all("web01", "web02")
    assert setup.send("web01", "app/disk", "-d", "percent=97").returncode == 0
    assert setup.send("web02", "app/nginx", "-d", "running=false").returncode == 0
    waiting = wait_until(lambda: setup.events("--tag", "minion/web02/app/nginx"), 20, "web02's event")[0]
    explained = {d["rule"]: d for d in setup.cli_json("rules", "explain", waiting["id"])["recorded"]}
    assert "waiting for disk" in explained["disk-and-service"]["reason"]
    assert setup.events("--tag", "ops/incident") == []  # web01's disk and web02's nginx never join

    # web01 now: its nginx goes down after a change and a restart, in that order
    for tag, pair in (("app/restarted", "x=1"), ("app/changed", "file=nginx.conf"), ("app/restarted", "x=2")):
        assert setup.send("web01", tag, "-d", pair).returncode == 0
    assert setup.send("web01", "app/nginx", "-d", "running=false").returncode == 0
    incident = wait_until(lambda: setup.events("--tag", "ops/incident"), 20, "the incident")
    assert [e["data"] for e in incident] == [{"host": "web01", "percent": 97, "disk_from": "web01"}]
    rollback = wait_until(lambda: setup.events("--tag", "ops/rollback"), 20, "the rollback")
    assert [e["data"] for e in rollback] == [{"host": "web01", "change": "nginx.conf"}]

    # 100,000 distinct keys into a rule that keeps 50,000: the oldest dropped and counted
    assert setup.send("web02", "app/many", "--count", "100000").returncode == 0

    def listed() -> dict[str, Any]:
        return {r["name"]: r for r in setup.cli_json("rules", "list")}["many-keys"]

    state = wait_until(lambda: (s := listed()["state"])["dropped"] >= 50_000 and s, 120, "the keys' limit")
    assert state == {"keys": 50_000, "dropped": 50_000, "max_keys": 50_000}
    assert "50000/50000 (50000 dropped)" in setup.cli("rules", "list").stdout
    assert setup.send("web02", "app/other", "-d", "n=100000").returncode == 0  # a kept key
    assert setup.send("web02", "app/other", "-d", "n=1").returncode == 0  # a dropped one
    wait_until(
        lambda: listed()["fired"] == 1 and listed()["state"]["keys"] == 50_000, 20, "the kept key to join"
    )


ABSENCE = """
rules:
  - name: deploy-never-finished
    absence:
      events:
        started: {on: "deploy/*/started"}
        finished: {on: "deploy/*/finished"}
      within: 3s
      key: "{{ data.deploy }}"
    do:
      - fire: ops/deploy/stuck
        data: {deploy: "{{ events.started.data.deploy }}", at: "{{ events.started.time }}"}
"""


def test_an_absence_fires_at_its_deadline_even_when_the_master_was_restarted_in_between(setup: Setup) -> None:
    write_rules(setup, ABSENCE)
    master = setup.start_master()
    started = fire(setup, "deploy/api/started", "deploy=d1")
    fire(setup, "deploy/web/started", "deploy=d2")
    fire(setup, "deploy/web/finished", "deploy=d2")  # in time: d2 never fires
    when = setup.cli_json("event", "show", started)["time"]
    assert master.stop() == 0
    setup.daemons.remove(master)
    wait_until(lambda: time.time() > when + 4, 10, "the deadline to pass while the master is stopped")

    setup.start_master()
    stuck = wait_until(lambda: setup.events("--tag", "ops/deploy/stuck"), 20, "the late absence")
    assert [e["data"] for e in stuck] == [{"deploy": "d1", "at": when}]
    assert stuck[0]["causation"] == started
    decisions = setup.cli_json("event", "show", started)["decisions"]
    assert [(d["rule"], d["fired"]) for d in decisions][-1] == ("deploy-never-finished", True)
    fire(setup, "deploy/api/finished", "deploy=d1")  # too late to matter, and nothing waits
    assert [e["data"]["deploy"] for e in setup.events("--tag", "ops/deploy/stuck")] == ["d1"]


FLEET = """
rules:
  - name: web-tier-hot
    fleet:
      target: "web*"
      on: "minion/*/app/load"
      when: {data.load: {gt: 4}}
      max_age: 1h
      percent: 50
      clear: 20
    do:
      - fire: ops/web/hot
        data: {minions: "{{ events.fleet.data.minions }}", percent: "{{ events.fleet.data.percent }}"}
"""
WEB = [f"web0{i}" for i in range(1, 7)]


def test_a_fleet_condition_over_six_minions_crosses_up_and_down_with_hysteresis(setup: Setup) -> None:
    write_rules(setup, FLEET)
    setup.start_master()
    daemons = {minion: setup.start_minion(minion) for minion in WEB}
    setup.accept_all(*WEB)

    def load(minion: str, value: int) -> dict[str, Any]:
        before = len(setup.events("--tag", f"minion/{minion}/app/load"))
        assert setup.send(minion, "app/load", "-d", f"load={value}").returncode == 0
        got = wait_until(
            lambda: (e := setup.events("--tag", f"minion/{minion}/app/load")) and len(e) > before and e,
            20,
            f"{minion}'s load",
        )
        (decision,) = setup.cli_json("rules", "explain", got[-1]["id"])["recorded"]
        return decision  # type: ignore[no-any-return]

    assert not load("web01", 9)["fired"] and not load("web02", 9)["fired"]
    assert load("web03", 9)["fired"]  # 3 of 6: 50%
    assert "fires again after falling to 20%" in load("web03", 1)["reason"]  # 2 of 6
    assert not load("web03", 9)["fired"]  # 3 of 6 again: not re-armed, no second firing
    load("web03", 1)
    # web02 goes silent, then down: 1 of 6 (17%) are up and hot, at or below the clear level
    daemons["web02"].proc.send_signal(signal.SIGKILL)
    wait_until(lambda: setup.events("--tag", "reactor/presence/web02/down"), 30, "web02 down")
    changes = setup.events("--tag", "reactor/presence/web02/*")
    reasons = [d["reason"] for e in changes for d in setup.cli_json("rules", "explain", e["id"])["recorded"]]
    assert any("re-armed" in r and "1 of 6" in r for r in reasons), reasons
    assert not load("web04", 9)["fired"]
    assert load("web05", 9)["fired"]
    hot = wait_until(lambda: len(e := setup.events("--tag", "ops/web/hot")) == 2 and e, 20, "two firings")
    assert sorted((e["data"]["minions"], e["data"]["percent"]) for e in hot) == [
        (["web01", "web02", "web03"], 50.0),
        (["web01", "web04", "web05"], 50.0),
    ]


DIFFERENTIAL = """
rules:
  - name: pair
    correlate:
      events: {a: "diff/a", b: {on: "diff/b", when: {data.ok: false}}}
      need: all
      within: 1h
      key: "{{ data.k }}"
    do: [{fire: out/pair, data: {k: "{{ data.k }}", a: "{{ events.a.data.v }}"}}]
  - name: order
    sequence:
      events: {a: "diff/a", c: "diff/c"}
      within: 1h
      key: "{{ data.k }}"
    do: [{fire: out/order, data: {k: "{{ data.k }}"}}]
  - name: missing
    absence:
      events: {c: "diff/c", d: "diff/d"}
      within: 2s
      key: "{{ data.k }}"
    do: [{fire: out/missing, data: {k: "{{ events.c.data.k }}"}}]
"""
SEQUENCE = [
    ("diff/a", {"k": "x", "v": 1}),
    ("diff/b", {"k": "y", "ok": False}),
    ("diff/c", {"k": "y"}),
    ("diff/b", {"k": "x", "ok": True}),
    ("diff/c", {"k": "x"}),
    ("diff/a", {"k": "y", "v": 2}),
    ("diff/b", {"k": "x", "ok": False}),
    ("diff/d", {"k": "x"}),
    ("diff/c", {"k": "z"}),
]


def test_the_same_events_fire_the_same_rules_offline_and_live(setup: Setup, tmp_path: Path) -> None:
    write_rules(setup, DIFFERENTIAL)
    setup.start_master()
    for tag, data in SEQUENCE:
        assert setup.cli("event", "fire", tag, "--data", json.dumps(data)).returncode == 0
    taken = wait_until(
        lambda: len(e := setup.events("--tag", "diff/*")) == len(SEQUENCE) and e, 20, "the events"
    )
    events = [{"tag": e["tag"], "source": e["source"], "time": e["time"], "data": e["data"]} for e in taken]
    events.append({"clock": max(e["time"] for e in events) + 10})  # past the absences' deadlines
    (tmp_path / "events.json").write_text(json.dumps(events))
    rules = tmp_path / "rules.yaml"
    rules.write_text(DIFFERENTIAL)
    offline = run_cli("rules", "test", str(rules), "--event", str(tmp_path / "events.json"), "--json")
    assert offline.returncode == 0, offline.stderr
    steps = json.loads(offline.stdout)["steps"]
    expected = sorted(
        (a["params"]["tag"], json.dumps(a["params"]["data"])) for s in steps for a in s["actions"]
    )
    # pairs for y then x, the order of x, and the absences of y's and z's d at their deadlines
    assert [t for t, _ in expected] == ["out/missing", "out/missing", "out/order", "out/pair", "out/pair"]

    def live() -> list[tuple[str, str]]:
        return sorted((e["tag"], json.dumps(e["data"])) for e in setup.events("--tag", "out/*"))

    wait_until(lambda: live() == expected, 20, f"the live firings to be the offline ones, {expected}")
