"""Rule patterns against hostile event data: matching takes linear time, whatever a minion sends.

Through real daemons: with Python's backtracking ``re`` the first event below kept the master
busy for longer than the universe will last (it stopped answering and ignored SIGTERM).
"""

from __future__ import annotations

import json
from typing import Any

from tests.security.helpers import ping, running
from tests.support import Setup, run_cli, wait_until

STARS = "*a" * 40 + "*b"  # one segment: a backtracking regex tries O(n**40) splits
DEEP = "/".join(["**", "a"] * 40) + "/b"  # whole segments: as many ways to spread 32 of them

RULES = f"""
rules:
  - name: redos
    on: "minion/*/app/login"
    when:
      data.user: {{regex: "^(a+)+$"}}
    do:
      - fire: ops/login/all-a
        data: {{user: "{{{{ data.user }}}}"}}
  - name: many-stars
    on: "minion/*/app/login"
    when:
      data.user: {{glob: "*a*a*a*a*a*a*a*a*b"}}
    do:
      - log: "stars {{{{ source }}}}"
  - name: tag-stars
    on: ["minion/*/app/{STARS}", "{DEEP}"]
    do:
      - log: "tag {{{{ tag }}}}"
"""


def test_hostile_text_and_tags_leave_the_master_serving_and_every_event_logged(setup: Setup) -> None:
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "patterns.yaml").write_text(RULES)
    running(setup, "web01", "db01")
    hostile_user = "a" * 4095 + "b"
    sent = [
        ("app/login", hostile_user),
        ("app/" + "a" * 200, "x"),  # the in-segment globs' worst case
        ("/".join(["a"] * 29) + "/c", "x"),  # under minion/web01/: 32 segments, the most a tag has
        ("app/login", "aaa"),
        ("app/login", "bob"),
    ]
    for tag, user in sent:
        assert setup.send("web01", tag, "--data", json.dumps({"user": user})).returncode == 0

    # Events are decided in order: the one fired for "aaa" comes after the hostile ones.
    fired = wait_until(lambda: setup.events("--tag", "ops/login/all-a"), 30, "the rule to fire for aaa")
    assert [e["data"]["user"] for e in fired] == ["aaa"]

    def all_logged() -> list[dict[str, Any]]:
        found = [e for e in setup.events("--source", "web01") if "user" in e["data"]]
        return found if len(found) == len(sent) else []

    logged = wait_until(all_logged, 30, "every event sent in the log")
    assert sorted(e["data"]["user"] for e in logged) == sorted(user for _tag, user in sent)

    assert setup.cli("status").returncode == 0
    assert ping(setup, "db01")  # test.ping with --timeout 5: answered within 5 seconds

    hostile = next(e for e in logged if e["data"]["user"] == hostile_user)
    explained = setup.cli("rules", "explain", hostile["id"])
    assert explained.returncode == 0
    assert 'not fired: redos — data.user: expected regex "^(a+)+$"' in explained.stdout


def test_a_pattern_that_needs_backtracking_is_refused_by_rules_check_and_by_the_gate(setup: Setup) -> None:
    bad = setup.root / "lookahead.yaml"
    bad.write_text(
        'rules:\n  - name: admins\n    on: "minion/*/app/login"\n    when:\n'
        '      data.user: {regex: "^(?=admin)"}\n    do:\n      - log: admin\n'
    )
    check = run_cli("rules", "check", str(bad))
    assert check.returncode == 2
    assert (
        f"{bad}:4: rules[0] (admins).when: when.data.user.regex: bad regular expression: "
        "invalid perl operator: (?= (RE2 syntax" in check.stderr
    )

    running(setup)
    gate = setup.cli("gate", "minion/*/app/login", r"data.user =~ '^(a)\1$'")
    assert gate.returncode == 2
    assert "gate[0].when.data.user.regex: bad regular expression: invalid escape sequence" in gate.stderr
    assert "RE2 syntax" in gate.stderr
