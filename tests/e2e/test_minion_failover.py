"""A minion with two masters fails over: real masters on 127.0.0.1 and 127.0.0.2 (both loopback,
the same ports), the same master key pair on both, a real minion with ``master: [A, B]``.

Without cluster mode the masters share nothing: each logs what reaches it. So A holds what
it acknowledged before it died, and B gets everything else from the minion's outbox: what A
never acknowledged, then what was sent after, each event once, and nothing A had already
acknowledged.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import Setup, minion_cli, wait_until

pytestmark = pytest.mark.slow

A, B = "127.0.0.1", "127.0.0.2"
HEARTBEAT = 0.2  # presence.heartbeat in the setup's master.yaml (tests.support.Setup.create)
#: docs/operations.md: the minion leaves a master silent for three heartbeats, checked once a
#: heartbeat, and is on the next one within four heartbeats of the last answer.
FAILOVER = 4 * HEARTBEAT
#: What waiting adds to it here: each poll starts a Python process (``minion status``).
MARGIN = 5.0


@pytest.fixture
def master_b(setup: Setup) -> Iterator[Setup]:
    """A second master's setup folder: A's master.yaml on 127.0.0.2 (same ports), its own
    state, and A's master key pair (pki_dir/master*, as an operator copies it)."""
    root = setup.root / "b"
    root.mkdir()
    config = yaml.safe_load(setup.master_yaml.read_text())
    config["interface"] = B
    (root / "master.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(setup.root / "reactor.d", root / "reactor.d")
    other = Setup(root, setup.ports)
    try:
        yield other
    finally:
        unclean = other.close()
    assert not unclean, "master B did not stop cleanly on SIGTERM:\n" + "\n".join(unclean)


def _copy_master_keys(a: Setup, b: Setup, *accepted: str) -> None:
    """B presents A's keys (pki_dir/master*) and knows the minions A accepted."""
    source, target = a.root / "pki" / "master", b.root / "pki" / "master"
    (target / "minions" / "accepted").mkdir(parents=True, mode=0o700)
    target.chmod(0o700)
    (target / "minions").chmod(0o700)
    keys = sorted(source.glob("master*"))
    assert {k.name for k in keys} >= {"master.pem", "master.pub"}
    assert any(k.name.startswith("master_sign") for k in keys), [k.name for k in keys]
    for key in keys:
        shutil.copy2(key, target / key.name)
    for minion_id in accepted:
        shutil.copy2(source / "minions" / "accepted" / minion_id, target / "minions" / "accepted" / minion_id)


def _status(config: Path) -> dict[str, Any]:
    result = minion_cli("status", "-c", str(config), timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _app_events(master: Setup) -> dict[str, list[int]]:
    """The minion's app/* events a master logged: tag -> the n of each, in log order."""
    out: dict[str, list[int]] = {}
    for event in master.events("--tag", "minion/web01/app/*"):
        out.setdefault(event["tag"].rsplit("/", 1)[1], []).append(event["data"]["n"])
    return out


def test_a_minion_fails_over_to_the_second_master_and_loses_nothing(setup: Setup, master_b: Setup) -> None:
    a_daemon = setup.start_master()
    minion = setup.start_minion("web01", master=[A, B])
    config = setup.root / "minion-web01.yaml"
    setup.accept_all("web01")
    status = _status(config)
    assert (status["master"], status["masters"], status["status"]) == (A, [A, B], "accepted")

    _copy_master_keys(setup, master_b, "web01")
    master_b.start_master()
    assert master_b.key_state("web01") == "accepted"
    assert master_b.cli_json("key", "finger")["master"] == setup.cli_json("key", "finger")["master"]

    assert setup.send("web01", "app/before", "--count", "5").returncode == 0
    wait_until(lambda: _app_events(setup).get("before") == [1, 2, 3, 4, 5], 20, "A to log app/before")
    wait_until(lambda: _status(config)["outbox"]["depth"] == 0, 20, "A to acknowledge app/before")

    # A stops answering (SIGSTOP): it can acknowledge nothing from here on, then it dies.
    silent_since = time.monotonic()
    a_daemon.proc.send_signal(signal.SIGSTOP)
    assert setup.send("web01", "app/unacked", "--count", "5").returncode == 0
    a_daemon.proc.send_signal(signal.SIGKILL)
    a_daemon.proc.wait(timeout=10)

    line = wait_until(
        lambda: re.search(
            r"master 127\.0\.0\.1 lost \(no answer for ([0-9.]+)s\); trying 127\.0\.0\.2 \(2 of 2\)",
            minion.output(),
        ),
        FAILOVER + MARGIN,
        "the minion to fail over to B",
    )
    switched = wait_until(
        lambda: (s := _status(config))["master"] == B and s["status"] == "accepted" and s,
        FAILOVER + MARGIN,
        "the minion accepted on B",
    )
    assert time.monotonic() - silent_since < FAILOVER + MARGIN
    assert float(line.group(1)) <= FAILOVER + 1.0, line.group(0)  # 1s: the event loop's own delays
    assert switched["masters"] == [A, B]

    assert setup.send("web01", "app/after", "--count", "5").returncode == 0
    wait_until(
        lambda: _app_events(master_b) == {"unacked": [1, 2, 3, 4, 5], "after": [1, 2, 3, 4, 5]},
        30,
        "B to log every event A did not acknowledge and those sent after, once each",
    )
    wait_until(lambda: _status(config)["outbox"]["depth"] == 0, 20, "B to acknowledge them")

    ran = master_b.cli("run", "web01", "test.ping", "--json", "--timeout", "10")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["returns"]["web01"]["return"] is True
    assert minion.alive()


def test_a_listed_master_with_another_key_is_refused_and_passed_over(setup: Setup, master_b: Setup) -> None:
    """B has keys of its own (and accepts anyone): the minion never trusts it, says so, and goes
    round the list back to A; nothing of it reaches B."""
    master_b.edit_master(auto_accept=True)
    a_daemon = setup.start_master()
    master_b.start_master()
    assert master_b.cli_json("key", "finger")["master"] != setup.cli_json("key", "finger")["master"]

    # Nothing pinned yet: B, listed first, offers a key master_finger does not name.
    minion = setup.start_minion("web01", master=[B, A])
    config = setup.root / "minion-web01.yaml"
    wait_until(
        lambda: re.search(
            r"the master at 127\.0\.0\.2 offers a key with fingerprint \S+, but master_finger "
            r"is \S+: refusing it; trying 127\.0\.0\.1 \(2 of 2\)",
            minion.output(),
        ),
        20,
        "the minion to refuse B's key and try A",
    )
    setup.accept_all("web01")
    assert _status(config)["master"] == A

    # A dies: B is tried (CURVE with the pinned key never completes there), then A again.
    a_daemon.kill()
    wait_until(lambda: "master 127.0.0.1 lost" in minion.output(), FAILOVER + MARGIN, "A lost")
    wait_until(
        lambda: (
            re.search(
                r"the master at 127\.0\.0\.2 offers key \S+, not the pinned \S+: refusing it", minion.output()
            )
            and re.search(
                r"master 127\.0\.0\.2 lost \(no answer for [0-9.]+s\); trying 127\.0\.0\.1 \(2 of 2\)",
                minion.output(),
            )
            and "no master has answered in a full round" in minion.output()
        ),
        30,
        "the minion to pass B over and go round to A",
    )
    assert setup.send("web01", "app/meanwhile", "--count", "3").returncode == 0
    assert _status(config)["status"] != "accepted"

    setup.start_master()  # A is back: the minion finds it on its next round
    wait_until(
        lambda: (s := _status(config))["master"] == A and s["status"] == "accepted",
        30,
        "the minion back on A",
    )
    wait_until(lambda: _app_events(setup).get("meanwhile") == [1, 2, 3], 20, "A to log app/meanwhile")
    assert master_b.cli_json("key", "list") == {"accepted": [], "denied": [], "pending": [], "rejected": []}
    assert master_b.events("--source", "web01") == []
    assert minion.alive()
