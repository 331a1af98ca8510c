"""Files on disk, local sockets, and what a rule file may make the master do."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reactord.actions.kinds import KINDS
from reactord.reactor.conditions import Counter
from reactord.reactor.rules import RuleError, load_rules_text
from tests.security.helpers import running
from tests.support import Setup

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_keys_databases_and_sockets_are_owner_only(setup: Setup) -> None:
    running(setup, "web01")
    assert setup.send("web01", "warmup").returncode == 0
    root = setup.root
    secrets = [
        root / "pki/master/master.pem",
        root / "pki/master/master_sign.pem",
        root / "pki/web01/minion.pem",
        root / "state/master/master.db",
        root / "state/web01/minion.db",
        root / "state/web01/outbox.db",
        *sorted((root / "pki/master/minions").rglob("web01")),
    ]
    for path in secrets:
        assert _mode(path) == 0o600, path
    for path in (
        root / "state/master/control.sock",
        root / "state/master/bus.sock",
        root / "state/web01/minion.sock",
    ):
        assert stat.S_ISSOCK(path.lstat().st_mode) and _mode(path) == 0o600, path
    for folder in (
        root / "pki/master",
        root / "pki/master/minions",
        root / "pki/web01",
        root / "state/master",
        root / "state/web01",
    ):
        assert _mode(folder) == 0o700, folder
    for wal in root.glob("state/**/*.db-wal"):
        assert _mode(wal) & 0o077 == 0, wal


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_local_user_cannot_use_the_control_socket_or_the_minion_socket(setup: Setup) -> None:
    running(setup, "web01")
    env = {**os.environ, "HOME": "/tmp"}
    as_nobody = subprocess.run(
        [*NOBODY, sys.executable, "-m", "reactord", "key", "list", "-c", str(setup.master_yaml)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert as_nobody.returncode in (2, 3) and "permission denied" in as_nobody.stderr.lower()
    send = subprocess.run(
        [*NOBODY, sys.executable, "-m", "minion", "send", "x", "-c", str(setup.root / "minion-web01.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert send.returncode != 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("rules: !!python/object/apply:os.system ['id']", "invalid YAML"),
        (
            "rules:\n  - name: a\n    on: x\n    do: [{webhook: 'file:///etc/shadow'}]\n",
            "http:// or https://",
        ),
        ("rules:\n  - name: a\n    on: x\n    do: [{exec: 'cat /etc/shadow | mail x'}]\n", "no shell"),
        (
            "rules:\n  - name: a\n    on: x\n    do: [{fire: 'reactor/key/x/accepted'}]\n",
            "belong to the master",
        ),
        ("include: /etc/shadow\nrules: []\n", "one key, rules"),
        ("rules: &a [*a]\n", "recursive node"),
    ],
)
def test_a_rule_file_cannot_read_outside_or_reach_a_shell(text: str, message: str) -> None:
    with pytest.raises(
        RuleError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("[", r"\[")
        .replace("]", r"\]")
        .replace("|", r"\|")
        .replace("*", r"\*"),
    ):
        load_rules_text(text, "evil.yaml", Counter(), kinds=KINDS)


def test_the_master_reads_only_the_rule_files_its_globs_name(setup: Setup) -> None:
    outside = setup.root / "outside.yaml"
    outside.write_text("rules:\n  - name: sneaky\n    on: x\n    do: [{log: hi}]\n")
    running(setup)
    names = [r["name"] for r in setup.cli_json("rules", "list")]
    assert "sneaky" not in names
    assert all(r["file"].startswith(str(setup.root / "reactor.d")) for r in setup.cli_json("rules", "list"))


def test_templates_look_up_keys_never_attributes() -> None:
    from reactord.protocol.events import Event
    from reactord.reactor.templates import TemplateError, compile_value, render_value

    template = compile_value("{{ data.__class__.__init__.__globals__ }}")
    with pytest.raises(TemplateError, match="no such value"):
        render_value(template, Event(id="1", tag="t", source="s", time=0.0, data={"a": 1}))
    shaped = {"__class__": {"__init__": {"__globals__": "just data"}}}
    assert render_value(template, Event(id="1", tag="t", source="s", time=0.0, data=shaped)) == "just data"
    for path in ("{{ __import__ }}", "{{ event.__dict__ }}", "{{ source.upper }}"):
        with pytest.raises(ValueError):
            compile_value(path)
