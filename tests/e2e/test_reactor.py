"""Issue 4 through real daemons: rules react, chain, hold state across restarts, explain, retry."""

from __future__ import annotations

import http.server
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Setup, wait_until


def write_rules(setup: Setup, text: str, name: str = "test.yaml") -> None:
    (setup.root / "reactor.d" / "example.yaml").unlink(missing_ok=True)
    (setup.root / "reactor.d" / name).write_text(text)


def fire(setup: Setup, tag: str, *pairs: str) -> str:
    args = [arg for pair in pairs for arg in ("-d", pair)]
    result = setup.cli("event", "fire", tag, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def recorded(setup: Setup, event_id: str) -> dict[str, Any]:
    return {d["rule"]: d for d in setup.cli_json("rules", "explain", event_id)["recorded"]}


CHAIN = """
rules:
  - name: echo-back
    on: "minion/*/app/deployed"
    when:
      data.version: {exists: true}
    do:
      - run: test.echo
        args: ["{{ data.version }}"]
        timeout: 10s
  - name: after-echo
    on: "reactor/job/*/ret/*"
    when:
      data.fun: test.echo
      data.success: true
    do:
      - fire: ops/chain/done
        data: {host: "{{ data.id }}", echoed: "{{ data.return }}"}
"""


def test_a_minion_event_runs_a_function_whose_return_fires_an_event_and_show_tells_the_chain(
    setup: Setup,
) -> None:
    write_rules(setup, CHAIN)
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    assert setup.send("web01", "app/deployed", "-d", "version=42").returncode == 0
    done = wait_until(lambda: setup.events("--tag", "ops/chain/done"), 30, "the chained event")
    assert done[0]["data"] == {"host": "web01", "echoed": 42}

    origin = setup.events("--tag", "minion/web01/app/deployed")[0]
    shown = setup.cli_json("event", "show", origin["id"])
    assert [(d["rule"], d["fired"]) for d in shown["decisions"]] == [("echo-back", True)]
    (action,) = shown["actions"]
    assert (action["kind"], action["status"]) == ("run", "ok")
    (job,) = shown["jobs"]
    assert job["jid"] == action["jid"] and job["returns"]["web01"]["return"] == 42
    ret = next(c for c in shown["caused"] if c["tag"].endswith("/ret/web01"))
    assert [(d["rule"], d["fired"]) for d in ret["decisions"]] == [("after-echo", True)]
    assert [c["tag"] for c in ret["caused"]] == ["ops/chain/done"]
    assert ret["caused"][0]["id"] == done[0]["id"]

    human = setup.cli("event", "show", origin["id"]).stdout
    for line in ("rule echo-back: fired", "run test.echo: ok", "rule after-echo: fired", "-> ops/chain/done"):
        assert line in human


def test_throttle_holds_across_a_master_restart(setup: Setup) -> None:
    write_rules(
        setup,
        """
rules:
  - name: once-an-hour
    on: ops/throttled
    throttle: {once_within: 1h, key: "{{ data.host }}"}
    do: [{log: "throttled {{ data.host }}"}]
""",
    )
    master = setup.start_master()
    first = fire(setup, "ops/throttled", "host=a")
    assert recorded(setup, first)["once-an-hour"]["fired"] is True
    assert master.stop() == 0
    setup.daemons.remove(master)

    setup.start_master()
    again = fire(setup, "ops/throttled", "host=a")
    decision = recorded(setup, again)["once-an-hour"]
    assert decision["fired"] is False and decision["reason"].startswith("throttle: fired")
    other = fire(setup, "ops/throttled", "host=b")
    assert recorded(setup, other)["once-an-hour"]["fired"] is True


def test_changed_threshold_and_for_live(setup: Setup) -> None:
    write_rules(
        setup,
        """
rules:
  - name: went-down
    on: ops/svc
    changed: data.running
    from: true
    to: false
    do: [{log: down}]
  - name: three-strikes
    on: ops/strike
    threshold: {count: 3, within: 1h}
    do: [{log: strikes}]
  - name: hot-for-a-second
    on: ops/hot
    when: {data.v: {gt: 4}}
    for: 1s
    do:
      - fire: ops/hot/confirmed
        data: {v: "{{ data.v }}"}
""",
    )
    setup.start_master()
    ids = [fire(setup, "ops/svc", f"running={v}") for v in ("true", "true", "false", "false")]
    assert [recorded(setup, i)["went-down"]["fired"] for i in ids] == [False, False, True, False]
    strikes = [fire(setup, "ops/strike") for _ in range(3)]
    assert [recorded(setup, i)["three-strikes"]["fired"] for i in strikes] == [False, False, True]
    hot = fire(setup, "ops/hot", "v=9")
    assert recorded(setup, hot)["hot-for-a-second"]["reason"].startswith("for: holding")
    confirmed = wait_until(lambda: setup.events("--tag", "ops/hot/confirmed"), 15, "the hold to fire")
    assert confirmed[0]["data"] == {"v": 9} and confirmed[0]["causation"] == hot


def test_a_rule_that_fires_its_own_trigger_stops_at_the_depth_limit(setup: Setup) -> None:
    setup.edit_master(reactor={"max_depth": 3})
    write_rules(setup, "rules:\n  - name: loop\n    on: ops/loop\n    do: [{fire: ops/loop}]\n")
    master = setup.start_master()
    fire(setup, "ops/loop")
    wait_until(lambda: "depth limit" in master.output(), 15, "the depth limit to be logged")
    loop_events = setup.events("--tag", "ops/loop")
    assert [e.get("depth", 0) for e in loop_events] == [0, 1, 2, 3]
    last = recorded(setup, loop_events[-1]["id"])["loop"]
    assert last["fired"] is False and last["reason"].startswith("depth limit")
    assert setup.counters()["reactor.depth_limited"] == 1


class _Hook(http.server.BaseHTTPRequestHandler):
    status = 500
    seen: list[tuple[float, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((time.monotonic(), body))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"nope" if type(self).status >= 400 else b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[type[_Hook], int]]:
    handler = type("Hook", (_Hook,), {"status": 500, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_failing_webhook_is_retried_with_backoff_then_dead_lettered_then_retried_ok(
    setup: Setup, hook: tuple[type[_Hook], int]
) -> None:
    handler, port = hook
    write_rules(
        setup,
        f"""
rules:
  - name: notify
    on: ops/notify
    do:
      - webhook: "http://127.0.0.1:{port}/hook"
        body: {{host: "{{{{ data.host }}}}"}}
        timeout: 5s
        retry: {{attempts: 3, backoff: 0.5s, jitter: 0}}
""",
    )
    setup.start_master()
    event_id = fire(setup, "ops/notify", "host=web01")
    letters = wait_until(lambda: setup.cli_json("deadletters", "list"), 30, "a dead letter")
    (letter,) = letters
    assert letter["event_id"] == event_id and letter["attempts"] == 3
    assert "HTTP 500" in letter["error"]
    times = [t for t, _ in handler.seen]
    assert len(times) == 3
    assert times[2] - times[1] > times[1] - times[0] >= 0.45  # backoff doubles: 0.5s, then 1s
    assert json.loads(handler.seen[0][1]) == {"host": "web01"}
    shown = setup.cli_json("event", "show", event_id)
    assert shown["actions"][0]["status"] == "dead"

    handler.status = 500
    assert setup.cli("deadletters", "retry", letter["id"]).returncode == 1
    handler.status = 200
    retried = setup.cli("deadletters", "retry", letter["id"])
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert setup.cli_json("deadletters", "list") == []
    assert json.loads(handler.seen[-1][1]) == {"host": "web01"}
    assert setup.cli_json("status")["dead_letters"] == 0


def test_reload_is_atomic_and_says_why(setup: Setup) -> None:
    write_rules(setup, "rules:\n  - name: first\n    on: ops/a\n    do: [{log: a}]\n")
    master = setup.start_master()
    assert [r["name"] for r in setup.cli_json("rules", "list")] == ["first"]
    bad = setup.root / "reactor.d" / "bad.yaml"
    bad.write_text("rules:\n  - name: broken\n    on: ops/b\n    do: [{run: 'not a function'}]\n")
    result = setup.cli("rules", "reload")
    assert result.returncode == 1
    assert f"{bad}:4: rules[0] (broken).do[0]" in result.stderr
    master.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "rules not reloaded" in master.output(), 10, "the SIGHUP reload to refuse")
    assert [r["name"] for r in setup.cli_json("rules", "list")] == ["first"]

    bad.write_text("rules:\n  - name: second\n    on: ops/b\n    do: [{log: b}]\n")
    wait_until(
        lambda: (
            [r["name"] for r in setup.cli_json("rules", "list")] == ["second", "first"]
            or [r["name"] for r in setup.cli_json("rules", "list")] == ["first", "second"]
        ),
        15,
        "the file change to be picked up",
    )
    assert setup.cli("rules", "reload").returncode == 0


def test_explain_a_stored_event_and_a_json_event(setup: Setup) -> None:
    write_rules(
        setup,
        """
rules:
  - name: restart-nginx
    on: "ops/service/*"
    when:
      data.name: nginx
      data.running: false
    do: [{log: restart}]
  - name: other
    on: "ops/elsewhere"
    do: [{log: x}]
""",
    )
    setup.start_master()
    event_id = fire(setup, "ops/service/web01", "name=nginx", "running=true")
    explained = setup.cli_json("rules", "explain", event_id)
    (decision,) = explained["recorded"]
    assert decision["rule"] == "restart-nginx" and decision["fired"] is False
    assert decision["reason"] == "data.running: expected eq false, got true"
    assert explained["now"] == [{"rule": "restart-nginx", "fired": False, "reason": decision["reason"]}]

    event_file = setup.root / "event.json"
    event_file.write_text(
        json.dumps({"tag": "ops/service/web02", "data": {"name": "apache", "running": False}})
    )
    text = setup.cli("rules", "explain", "--event", str(event_file)).stdout
    assert 'not fired: restart-nginx — data.name: expected eq "nginx", got "apache"' in text
    event_file.write_text(
        json.dumps({"tag": "ops/service/web02", "data": {"name": "nginx", "running": False}})
    )
    assert "fired: restart-nginx" in setup.cli("rules", "explain", "--event", str(event_file)).stdout


def test_replay_reproduces_decisions(setup: Setup) -> None:
    write_rules(
        setup,
        """
rules:
  - name: went-down
    on: ops/svc
    changed: data.running
    from: true
    to: false
    do:
      - fire: ops/svc/alert
""",
    )
    setup.start_master()
    for value in ("true", "false", "true", "false"):
        fire(setup, "ops/svc", f"running={value}")
    wait_until(lambda: len(setup.events("--tag", "ops/svc/alert")) == 2, 15, "two alerts")
    dry = setup.cli("event", "replay", "--tag", "ops/svc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [line["rules"] for line in lines] == [["went-down"], ["went-down"]]
    assert "replayed 4 events: 2 rule firings (dry run)" in dry.stderr
    assert len(setup.events("--tag", "ops/svc/alert")) == 2  # a dry run runs nothing

    real = setup.cli("event", "replay", "--tag", "ops/svc")
    assert real.returncode == 0, real.stderr
    alerts = wait_until(
        lambda: (
            [e for e in setup.events("--tag", "ops/svc/alert")]
            if len(setup.events("--tag", "ops/svc/alert")) == 4
            else None
        ),
        15,
        "the replayed alerts",
    )
    assert len(alerts) == 4


def test_a_loop_through_a_minion_also_stops_at_the_depth_limit(setup: Setup) -> None:
    setup.edit_master(reactor={"max_depth": 3})
    write_rules(
        setup,
        """
rules:
  - name: bounce
    on: "minion/*/app/bounce"
    do:
      - run: event.fire
        target: "{{ source }}"
        args: [app/bounce, {n: 1}]
""",
    )
    master = setup.start_master()
    setup.start_minion("web01", functions={"allow": ["test.*", "event.fire"]})
    setup.accept_all("web01")
    assert setup.send("web01", "app/bounce").returncode == 0
    wait_until(lambda: "depth limit" in master.output(), 30, "the loop to hit the depth limit")
    bounces = setup.events("--tag", "minion/web01/app/bounce")
    assert [e.get("depth", 0) for e in bounces] == [0, 1, 2, 3]
    first = setup.cli_json("event", "show", bounces[0]["id"])
    assert [c["tag"] for c in first["caused"] if c["tag"].startswith("minion/")] == [
        "minion/web01/app/bounce"
    ]


def test_explain_compares_a_stored_event_with_the_one_before_it(setup: Setup) -> None:
    write_rules(
        setup, "rules:\n  - name: flip\n    on: ops/flag\n    changed: data.on\n    do: [{log: flip}]\n"
    )
    setup.start_master()
    ids = [fire(setup, "ops/flag", f"on={v}") for v in ("true", "false", "false")]
    assert [recorded(setup, i)["flip"]["fired"] for i in ids] == [True, True, False]
    assert [setup.cli_json("rules", "explain", i)["now"][0]["fired"] for i in ids] == [True, True, False]
