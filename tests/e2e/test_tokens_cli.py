"""``reactord token create/list/revoke`` through the real CLI and a real master."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import Setup

pytestmark = pytest.mark.slow


def test_tokens_are_created_shown_once_listed_and_revoked(tmp_path: Path) -> None:
    setup = Setup.create(tmp_path)
    setup.start_master()
    made = setup.cli("token", "create", "--role", "operate", "--name", "ci", "--expires", "30d")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("rdt_") and "shown this once" in made.stderr and "role operate" in made.stderr
    listed = setup.cli_json("token", "list")
    assert [(t["name"], t["role"], t["revoked"]) for t in listed] == [("ci", "operate", None)]
    assert secret not in json.dumps(listed)
    assert listed[0]["expires"] - listed[0]["created"] == pytest.approx(30 * 86400)

    bad = setup.cli("token", "create", "--role", "root")
    assert bad.returncode == 2 and "root" in bad.stderr
    unnamed = setup.cli("token", "create", "--role", "read", "--name", "two words")
    assert unnamed.returncode == 2 and "token name" in unnamed.stderr

    revoked = setup.cli("token", "revoke", "ci")
    assert revoked.returncode == 0 and f"revoked {listed[0]['id']} (ci, operate)" in revoked.stdout
    assert "revoked" in setup.cli("token", "list").stdout
    missing = setup.cli("token", "revoke", "nope")
    assert missing.returncode == 1 and "no token 'nope'" in missing.stderr
    assert not setup.close()
